import { formatProblem, PolicyInvalidError } from '../policy/language/errors.ts';
import { type LoadedPolicy, loadPolicyPath } from '../policy/language/load.ts';
import type { CliContext } from './command.ts';

/**
 * Loads a policy for a `baton policy` subcommand: an invalid one has its
 * problems printed as `file:line:col` lines and yields undefined, so that
 * the command can exit 1.
 */
export function loadPolicyOrReport(path: string, context: CliContext): LoadedPolicy | undefined {
  try {
    return loadPolicyPath(path);
  } catch (error) {
    if (!(error instanceof PolicyInvalidError)) throw error;
    for (const problem of error.problems) context.stderr.write(formatProblem(problem) + '\n');
    return undefined;
  }
}
