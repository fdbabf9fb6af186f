import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { FLUSH_MS } from '../../src/telemetry/logger.ts';

export const BATON_BIN = fileURLToPath(new URL('../../bin/baton.js', import.meta.url));

export interface RunningProcess {
  readonly child: ChildProcess;
  /** Everything written to stdout so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves when a line of stdout or stderr matches. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends a signal and waits for exit; resolves with the exit code. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  readonly exited: Promise<number | null>;
}

/**
 * Resolves once every line a baton process had logged before the call is on
 * its stdout: the log writer holds a line at most FLUSH_MS
 * (src/telemetry/logger.ts). A check that a line is absent (no token, no
 * second line) waits this out first; otherwise it reads a buffer that may
 * still be filling, and passes whatever the process logged. Where a line
 * is known to come last, wait for that line instead.
 */
export async function logLinesOut(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, FLUSH_MS + 100));
}

/** Starts a real `baton` process (the CLI as users run it) on the project's Node.js. */
export function startBaton(args: readonly string[], env: Readonly<Record<string, string>> = {}): RunningProcess {
  return startProcess(process.execPath, [BATON_BIN, ...args], env);
}

/** `inheritEnv: false` gives the child exactly `env`, as a container gets only its image's and its own. */
export function startProcess(
  command: string,
  args: readonly string[],
  env: Readonly<Record<string, string>> = {},
  options: { inheritEnv?: boolean; cwd?: string } = {},
): RunningProcess {
  const child = spawn(command, args, {
    env: options.inheritEnv === false ? { ...env } : { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  });
  let out = '';
  let err = '';
  const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void }> = [];
  const check = (): void => {
    for (const waiter of [...waiters]) {
      const match = (out + '\n' + err).match(waiter.pattern);
      if (match) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(match[0]);
      }
    }
  };
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    check();
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk;
    check();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    exited,
    stdout: () => out,
    stderr: () => err,
    waitForOutput(pattern, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(
                `timed out waiting for ${pattern} from ${command} ${args.join(' ')}\nstdout: ${out.slice(-2000)}\nstderr: ${err.slice(-2000)}`,
              ),
            ),
          timeoutMs,
        );
        const waiter = {
          pattern,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        waiters.push(waiter);
        void exited.then((code) => {
          if (waiters.includes(waiter)) {
            clearTimeout(timer);
            reject(
              new Error(
                `process exited (${code}) before printing ${pattern}\nstdout: ${out.slice(-2000)}\nstderr: ${err.slice(-2000)}`,
              ),
            );
          }
        });
        check();
      });
    },
    async stop(signal = 'SIGTERM', timeoutMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Runs the CLI to completion and returns its exit code and output. */
export async function runBaton(
  args: readonly string[],
  env: Readonly<Record<string, string>> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const running = startBaton(args, env);
  const code = await running.exited;
  return { code, stdout: running.stdout(), stderr: running.stderr() };
}
