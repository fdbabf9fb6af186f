/**
 * Decisions `baton authz` has made, reused for the same question. A
 * decision depends only on what its key holds (DESIGN.md, "Third round",
 * the authorizer's fault table):
 *
 *   direction · target · policy version · token digest · peer · method · path
 *
 * - the **token digest** (SHA-256 of the exact token bytes; inbound the
 *   bearer token, outbound the subject token its handle seals) makes every
 *   entry one user's: two users' tokens never share a digest, so never an
 *   entry;
 * - the **peer** (SPIFFE ID and certificate thumbprint) because the same
 *   token from another workload is another question (its binding);
 * - the **policy version**: a new version asks anew, and an entry made
 *   under the old one is never found again (it ages out);
 * - the **path**, query cut off, stands for its class: two paths share an
 *   entry only when they are the same path.
 *
 * An entry lives until the token's `exp` (or its introspection reuse
 * limit), and never longer than `decisionTtlSeconds`. What is kept is the
 * verified token and the policy's decision; every check still writes its
 * audit line, counts, and gets its own request id and context handle.
 * Refusals before the decision (a bad token, a refused binding, a 503)
 * are not kept: they are answered, as the sidecar answers them, each time.
 */
import { createExpiringLru } from '../core/expiring-lru.ts';
import type { Decision } from '../policy/language/decision.ts';
import type { VerifiedToken } from '../token/verified-token.ts';

export interface DecisionKey {
  readonly direction: 'inbound' | 'outbound';
  readonly target: string;
  readonly policyVersion: number;
  /** The token's digest (src/token/verified-cache.ts `tokenDigest`), or undefined for a call with none (service identity). */
  readonly tokenDigest: string | undefined;
  /** `spiffeId thumbprint` of the peer, or undefined for none. */
  readonly peer: string | undefined;
  readonly method: string;
  /** The path, query cut off. */
  readonly path: string;
}

export interface CachedDecision {
  /** Undefined for a service-identity call. */
  readonly verified: VerifiedToken | undefined;
  readonly decision: Decision;
}

export interface DecisionCache {
  get(key: DecisionKey): CachedDecision | undefined;
  /** Keeps the decision until the token's last use or the TTL, whichever is first. */
  set(key: DecisionKey, value: CachedDecision): void;
  readonly size: number;
  /** Lookups by result, for `baton_authz_decision_cache_total`. */
  readonly counts: { readonly hit: number; readonly miss: number };
}

export interface DecisionCacheOptions {
  readonly maxEntries: number;
  readonly ttlSeconds: number;
  /** Epoch milliseconds. */
  readonly now: () => number;
}

export function createDecisionCache(options: DecisionCacheOptions): DecisionCache {
  const entries = createExpiringLru<string, CachedDecision>({ max: options.maxEntries, now: options.now });
  const counts = { hit: 0, miss: 0 };
  return {
    get(key) {
      const found = entries.get(keyText(key));
      if (found === undefined) counts.miss++;
      else counts.hit++;
      return found;
    },
    set(key, value) {
      const verified = value.verified;
      const lastUse =
        verified === undefined
          ? Number.POSITIVE_INFINITY
          : (verified.reuseUntil === undefined
              ? verified.expiresAt
              : Math.min(verified.reuseUntil, verified.expiresAt)) * 1000;
      entries.set(keyText(key), value, Math.min(lastUse, options.now() + options.ttlSeconds * 1000));
    },
    get size() {
      return entries.size;
    },
    counts,
  };
}

/**
 * One text per key, unambiguous whatever its parts hold: a JSON array, so
 * no part can pass for two (a path holding the separator of a joined
 * string would).
 */
function keyText(key: DecisionKey): string {
  return JSON.stringify([
    key.direction,
    key.target,
    key.policyVersion,
    key.tokenDigest ?? null,
    key.peer ?? null,
    key.method,
    key.path,
  ]);
}
