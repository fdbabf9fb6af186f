/**
 * `baton.subject` in spans: a keyed hash of the user id by default, so a
 * trace backend (often run by another team, kept longer than logs) can
 * group one user's calls without learning who the user is. HMAC-SHA256
 * rather than a plain hash: user ids are guessable, and an unkeyed hash
 * of a guessable id is the id.
 *
 * Without a configured key each process draws its own, so pseudonyms do
 * not join across processes; deployments set `telemetry.subjectHashKey`
 * to the same secret everywhere.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { TelemetryConfig } from './config.ts';

/**
 * `issuer`: the issuer that authenticated the subject. `sub` is unique only
 * within one issuer, so the pseudonym keys on both: two identity providers'
 * `alice` get two pseudonyms.
 */
export type SubjectPseudonym = (subject: string, issuer?: string) => string;

// Subjects repeat (one user, many calls); bounded so a flood of ids cannot grow it.
const MEMO_MAX = 4096;

export function createSubjectPseudonym(config: TelemetryConfig | undefined): SubjectPseudonym {
  // In clear, the issuer is its own span attribute (baton.subject.issuer).
  if (config?.subjectInClear === true) return (subject) => subject;
  const key = config?.subjectHashKey ?? randomBytes(32);
  const memo = new Map<string, string>();
  return (subject, issuer) => {
    // NUL cannot occur in an issuer URL, so (issuer, subject) pairs never collide.
    const qualified = issuer === undefined ? subject : `${issuer}\u0000${subject}`;
    let pseudonym = memo.get(qualified);
    if (pseudonym === undefined) {
      pseudonym = `hmac:${createHmac('sha256', key).update(qualified, 'utf8').digest('base64url').slice(0, 22)}`;
      if (memo.size >= MEMO_MAX) memo.clear();
      memo.set(qualified, pseudonym);
    }
    return pseudonym;
  };
}
