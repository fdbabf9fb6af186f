/**
 * The demo's processes: each baton part started as a child of this process,
 * its output kept (parsed JSON log lines, the text, and optionally a log
 * file), waited on until it answers, and stopped with SIGTERM (SIGKILL only
 * past every part's default grace period, so a slow drain still writes its
 * last log lines) once its output is read to the end. A process that exits before it
 * answers fails the wait with the tail of its output.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, closeSync, openSync, readFileSync } from 'node:fs';
import { type Dispatcher, request } from 'undici';

export interface MeshProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** Parsed JSON log lines the process wrote so far. */
  readonly logs: Array<Record<string, unknown>>;
  output(): string;
}

export function startProcess(
  name: string,
  argv: readonly string[],
  env: Readonly<Record<string, string>>,
  logFile: string | undefined,
  fileOnly: boolean,
): MeshProcess {
  if (fileOnly && logFile !== undefined) {
    const fd = openSync(logFile, 'a');
    const child = spawn(process.execPath, argv, { env: { ...process.env, ...env }, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    // Read only when asked: a start that fails shows the file's tail.
    return { name, child, logs: [], output: () => readFileSync(logFile, 'utf8') };
  }
  const child = spawn(process.execPath, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Array<Record<string, unknown>> = [];
  let text = '';
  let partial = '';
  const onData = (chunk: string): void => {
    if (logFile !== undefined) appendFileSync(logFile, chunk);
    text += chunk;
    if (text.length > 4_000_000) text = text.slice(-2_000_000);
    partial += chunk;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a log line
      }
    }
  };
  child.stdout?.setEncoding('utf8').on('data', onData);
  child.stderr?.setEncoding('utf8').on('data', onData);
  return { name, child, logs, output: () => text };
}

/** Past the parts' default `shutdown.graceMs` (10 s): a part still draining is not killed with its last log lines held. */
const KILL_AFTER_MS = 15_000;

/** Resolves once the process has exited and its output is all read (and in its log file): 'close', not 'exit'. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  // 'close', not 'exit': the process has exited and its stdout and stderr are read to the end, so its last log lines are in.
  const outputOpen = child.stdout?.readableEnded === false || child.stderr?.readableEnded === false;
  const closed = outputOpen ? new Promise<void>((resolve) => child.once('close', () => resolve())) : Promise.resolve();
  if (child.exitCode !== null || child.signalCode !== null) return await closed;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS);
  await closed;
  clearTimeout(timer);
}

export async function waitForHttp(
  url: string,
  owner: MeshProcess,
  timeoutMs: number,
  dispatcher?: Dispatcher,
): Promise<void> {
  await poll(
    async () => {
      const response = await request(url, {
        headersTimeout: 1_000,
        bodyTimeout: 1_000,
        ...(dispatcher === undefined ? {} : { dispatcher }),
      });
      await response.body.dump();
      return response.statusCode === 200;
    },
    owner,
    timeoutMs,
    url,
  );
}

export async function waitForPort(port: number, owner: MeshProcess, timeoutMs: number): Promise<void> {
  await poll(
    async () => {
      const response = await request(`http://127.0.0.1:${port}/`, { headersTimeout: 1_000 });
      await response.body.dump();
      return true;
    },
    owner,
    timeoutMs,
    `port ${port}`,
  );
}

async function poll(probe: () => Promise<boolean>, owner: MeshProcess, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (owner.child.exitCode !== null) {
      throw new Error(
        `${owner.name} exited (${owner.child.exitCode}) before ${what} answered:\n${owner.output().slice(-3000)}`,
      );
    }
    try {
      if (await probe()) return;
    } catch {
      // not up yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${owner.name}: ${what} did not answer within ${timeoutMs} ms:\n${owner.output().slice(-3000)}`);
}
