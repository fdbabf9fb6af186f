/**
 * `node scripts/test-each.ts [--timeout=<seconds>] [--jobs=<n>] [file…]`:
 * runs test files one by one, each in its own `node --test` with the leak
 * check (test/helpers/leak-check.ts) and without a forced exit, and kills any
 * file whose process has not ended within the timeout (default 180 s).
 *
 * For chasing a file that hangs: `node --test` has no per-file timeout
 * (`--test-timeout` times tests, not files), so a file whose process never
 * ends would hang a whole `npm test`. This names it, with its output tail.
 * Without files it runs every test/**\/*.test.ts. Exits 1 if any file failed
 * or hung. Set BATON_LEAK_STACKS=1 for where each leaked resource was created.
 */
import { spawn } from 'node:child_process';
import { globSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

type Outcome = { file: string; verdict: 'pass' | 'fail' | 'hang'; ms: number; tail: string };

function runFile(file: string, timeoutMs: number): Promise<Outcome> {
  const started = Date.now();
  // Its own process group, so a hang is ended with the runner's child processes.
  const child = spawn(
    process.execPath,
    ['--test', '--test-concurrency=1', '--test-timeout=120000', '--import', './test/helpers/leak-check.ts', file],
    { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-6_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let hung = false;
  const timer = setTimeout(() => {
    hung = true;
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
  }, timeoutMs);
  return new Promise((resolve) => {
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ file, verdict: hung ? 'hang' : code === 0 ? 'pass' : 'fail', ms: Date.now() - started, tail: output });
    });
  });
}

async function main(argv: readonly string[]): Promise<number> {
  let timeoutS = 180;
  let jobs = 1;
  const files: string[] = [];
  for (const arg of argv) {
    if (arg.startsWith('--timeout=')) timeoutS = Number(arg.slice('--timeout='.length));
    else if (arg.startsWith('--jobs=')) jobs = Number(arg.slice('--jobs='.length));
    else files.push(relative(ROOT, arg));
  }
  if (!(timeoutS > 0) || !(jobs >= 1)) {
    process.stderr.write(`expected --timeout=<seconds> and --jobs=<n> to be positive numbers, got ${argv.join(' ')}\n`);
    return 2;
  }
  const queue = files.length > 0 ? files : globSync('test/**/*.test.ts', { cwd: ROOT }).sort();
  const outcomes: Outcome[] = [];
  const worker = async (): Promise<void> => {
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
      const outcome = await runFile(file, timeoutS * 1_000);
      outcomes.push(outcome);
      process.stdout.write(`${outcome.verdict.padEnd(4)} ${(outcome.ms / 1_000).toFixed(1).padStart(6)} s  ${file}\n`);
    }
  };
  await Promise.all(Array.from({ length: jobs }, worker));
  const bad = outcomes.filter((o) => o.verdict !== 'pass');
  for (const o of bad) process.stdout.write(`\n=== ${o.verdict}: ${o.file}\n${o.tail}\n`);
  process.stdout.write(
    `\n${outcomes.length} files: ${outcomes.filter((o) => o.verdict === 'pass').length} passed, ${bad.filter((o) => o.verdict === 'fail').length} failed, ${bad.filter((o) => o.verdict === 'hang').length} hung (killed after ${timeoutS} s)\n`,
  );
  return bad.length === 0 ? 0 : 1;
}

process.exitCode = await main(process.argv.slice(2));
