import { ConfigError } from '../config/config-error.ts';
import { BatonError, isBatonError, problemType } from '../core/errors.ts';

/** What a subcommand needs from its surroundings, passed in (STYLE rule 5). */
export interface CliContext {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  /** For commands that read input (`baton token check -`); absent: the process's fd 0. */
  readonly stdin?: NodeJS.ReadableStream;
}

export interface Command {
  /** One line for the parent's help listing. */
  readonly summary: string;
  /** Full `--help` text. */
  readonly help: string;
  /** Sub-subcommands (`token check`, `demo app`): `--help` after one prints `helpFor` it. */
  readonly subcommands?: readonly string[];
  /** The help of one of `subcommands`; the command's own help when absent. */
  readonly helpFor?: (subcommand: string) => Promise<string>;
  /** Runs the command; resolves with the exit code (long-running parts resolve on shutdown). */
  run(args: readonly string[], context: CliContext): Promise<number>;
}

/** Thrown for bad command-line usage: the CLI prints it with the help hint and exits 2. */
export class UsageError extends BatonError {
  constructor(message: string) {
    super('BATON_USAGE', message);
    this.name = 'UsageError';
  }
}

export function wantsHelp(args: readonly string[]): boolean {
  return args.includes('--help') || args.includes('-h');
}

/** Writes the failure the way every subcommand should: one clear line, a stable exit code. */
export function reportFailure(error: unknown, context: CliContext, usage: string): number {
  if (error instanceof UsageError) {
    context.stderr.write(`baton: ${error.message}\n${usage}\n`);
    return 2;
  }
  if (error instanceof ConfigError) {
    context.stderr.write(`baton: invalid configuration: ${error.message}\n`);
    return 78; // EX_CONFIG (sysexits.h)
  }
  if (
    error instanceof Error &&
    'code' in error &&
    typeof error.code === 'string' &&
    error.code.startsWith('ERR_PARSE_ARGS')
  ) {
    context.stderr.write(`baton: ${error.message}\n${usage}\n`);
    return 2;
  }
  // A coded cause names its code and where docs/errors.md says what to do about it.
  const reference = isBatonError(error) ? `\n  ${error.code}: ${problemType(error.code)}` : '';
  context.stderr.write(`baton: ${error instanceof Error ? error.message : String(error)}${reference}\n`);
  return 1;
}
