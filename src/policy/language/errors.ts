/**
 * The one error for a policy that cannot be used: unreadable, not YAML,
 * off-schema or semantically wrong. It carries every located problem so a
 * CLI can print them all and a policy client can log them, and it is what
 * `loadPolicyFile` and `policyFromJSON` throw.
 */
import { defineError } from '../../core/errors.ts';
import type { PolicyProblem } from './model.ts';

const PolicyInvalidBase = defineError({ code: 'BATON_POLICY_INVALID', status: 422, title: 'Invalid call-graph policy' });

export class PolicyInvalidError extends PolicyInvalidBase {
  readonly problems: readonly PolicyProblem[];
  constructor(problems: readonly PolicyProblem[]) {
    const errors = problems.filter((p) => p.severity === 'error');
    const [first] = errors;
    const where = first === undefined ? '' : `: ${formatProblem(first)}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}`;
    super(`invalid call-graph policy${where}`, { extensions: { problems: errors.map((p) => ({ code: p.code, message: p.message, location: p.location })) } });
    this.problems = problems;
  }
}

/** `file:line:col: severity CODE message`, the shape compilers and editors understand. */
export function formatProblem(problem: PolicyProblem): string {
  const { file, line, column } = problem.location;
  return `${file}:${line}:${column}: ${problem.severity} ${problem.code} ${problem.message}`;
}
