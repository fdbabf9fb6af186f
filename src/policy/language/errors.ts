/**
 * The call-graph policy's two errors: a policy that cannot be used, and a
 * call it refuses.
 *
 * The first is one error for a policy unreadable, not YAML, off-schema or
 * semantically wrong. It carries every located problem so a CLI can print
 * them all and a policy client can log them, and it is what
 * `loadPolicyFile` and `policyFromJSON` throw.
 */
import { defineError } from '../../core/errors.ts';
import type { PolicyProblem } from './model.ts';

/**
 * The policy refused the call: the sidecar's 403, with members `rule` and
 * `cause`, and the cause as the reason (`no_edge`, `depth_exceeded`,
 * `not_entrypoint`, …). The STS says it in RFC 8693 §2.2.2 words at its token
 * endpoint (src/sts/errors.ts).
 */
export const PolicyDeniedError = defineError({
  code: 'BATON_POLICY_DENIED',
  status: 403,
  title: 'Refused by the call-graph policy',
});

const PolicyInvalidBase = defineError({
  code: 'BATON_POLICY_INVALID',
  status: 422,
  title: 'Invalid call-graph policy',
});

export class PolicyInvalidError extends PolicyInvalidBase {
  readonly problems: readonly PolicyProblem[];
  constructor(problems: readonly PolicyProblem[]) {
    const errors = problems.filter((p) => p.severity === 'error');
    const [first] = errors;
    const where =
      first === undefined
        ? ''
        : `: ${formatProblem(first)}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}`;
    super(`invalid call-graph policy${where}`, {
      extensions: { problems: errors.map((p) => ({ code: p.code, message: p.message, location: p.location })) },
    });
    this.problems = problems;
  }
}

/** `file:line:col: severity CODE message`, the shape compilers and editors understand. */
export function formatProblem(problem: PolicyProblem): string {
  const { file, line, column } = problem.location;
  return `${file}:${line}:${column}: ${problem.severity} ${problem.code} ${problem.message}`;
}
