import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { formatProblem, PolicyInvalidError } from '../policy/language/errors.ts';
import { resolvePolicyPath } from '../policy/language/load.ts';
import type { PolicyProblem } from '../policy/language/model.ts';
import { parsePolicy } from '../policy/language/parse.ts';
import { type CliContext, type Command, UsageError } from './command.ts';

const HELP = `Usage: baton policy check [--strict] FILE|DIR...

Validates call-graph policies. Prints one line per problem,
  file:line:col: error|warning CODE message
and 'FILE: ok' for each usable policy.

Options:
  --strict   treat warnings as errors

Exit status: 0 every policy is usable, 1 a policy has errors, 2 usage error.`;

/** `baton policy check`: the CI gate for policy changes. */
export const policyCheckCommand: Command = {
  summary: 'validate policy files; errors as file:line:col',
  help: HELP,
  async run(args: readonly string[], context: CliContext): Promise<number> {
    const { values, positionals } = parseArgs({
      args: [...args],
      options: { strict: { type: 'boolean', default: false } },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length === 0) throw new UsageError('expected at least one policy file');
    let failed = false;
    for (const target of positionals) {
      const problems = checkOne(target);
      for (const problem of problems) context.stdout.write(formatProblem(problem) + '\n');
      const errors = problems.filter((p) => p.severity === 'error').length;
      const warnings = problems.length - errors;
      if (errors > 0 || (values.strict && warnings > 0)) {
        failed = true;
        // Counted as printed: a line marked warning is counted as a warning, and --strict says it refused it.
        const counts = [count(errors, 'error'), count(warnings, 'warning')].filter((c) => c !== '').join(' and ');
        context.stderr.write(
          `${target}: ${counts}${values.strict && warnings > 0 ? ' (--strict refuses warnings)' : ''}\n`,
        );
      } else {
        context.stdout.write(`${target}: ok${warnings > 0 ? ` (${count(warnings, 'warning')})` : ''}\n`);
      }
    }
    return failed ? 1 : 0;
  },
};

function count(n: number, noun: string): string {
  return n === 0 ? '' : `${n} ${noun}${n === 1 ? '' : 's'}`;
}

function checkOne(target: string): readonly PolicyProblem[] {
  try {
    const file = resolvePolicyPath(target);
    return parsePolicy(readFileSync(file, 'utf8'), file).problems;
  } catch (error) {
    if (error instanceof PolicyInvalidError) return error.problems;
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
    return [
      {
        code: 'POLICY_UNREADABLE',
        message: `cannot read the policy file: ${code}`,
        severity: 'error',
        location: { file: target, line: 1, column: 1 },
      },
    ];
  }
}
