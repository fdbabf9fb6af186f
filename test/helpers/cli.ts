import { Readable, Writable } from 'node:stream';
import { main } from '../../src/cli/main.ts';

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a one-shot `baton` command in this process, as bin/baton.js runs it:
 * `main()` with the process's environment (plus `env`), its output captured
 * and `stdin` as the command's standard input. For the unit tests of the CLI,
 * which spawn nothing; what only a real process shows (exit on a failed
 * start, signals, the bundle) is tested under test/e2e/ with
 * test/helpers/process.ts.
 */
export async function runCli(
  args: readonly string[],
  options: { env?: Readonly<Record<string, string>>; stdin?: string } = {},
): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const sink = (append: (text: string) => void): Writable =>
    new Writable({
      write(chunk: Buffer | string, _encoding, done) {
        append(String(chunk));
        done();
      },
    });
  const code = await main(args, {
    env: { ...process.env, ...options.env },
    stdout: sink((text) => (stdout += text)),
    stderr: sink((text) => (stderr += text)),
    stdin: Readable.from([options.stdin ?? '']),
  });
  return { code, stdout, stderr };
}
