/**
 * The two guards every `npm test` relies on, run the way package.json runs
 * them (`node --test --import …`) on small test files
 * (test/fixtures/test-infra/): the leak check fails a file that leaves a
 * handle open, naming it, and ends that file rather than hanging the run; the
 * unit suite's guard fails a test that starts a process, naming the command.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PROJECT_ROOT } from '../../scripts/build.ts';

const FIXTURES = join(PROJECT_ROOT, 'test/fixtures/test-infra');

function runTestFile(name: string, imports: readonly string[]): { status: number | null; output: string } {
  // Without NODE_TEST_CONTEXT, which tells a `node --test` started inside a test file to run nothing.
  const { NODE_TEST_CONTEXT: _context, ...env } = process.env;
  const result = spawnSync(
    process.execPath,
    [
      '--test',
      '--test-reporter=spec',
      ...imports.flatMap((file) => ['--import', `./test/helpers/${file}`]),
      join(FIXTURES, name),
    ],
    { cwd: PROJECT_ROOT, encoding: 'utf8', timeout: 60_000, env: { ...env, BATON_LEAK_STACKS: '' } },
  );
  return { status: result.status, output: result.stdout + result.stderr };
}

describe('the leak check and the spawn guard', { timeout: 120_000 }, () => {
  it('fails a file that leaves a timer running, names it, and ends the file', () => {
    const run = runTestFile('leaves-an-interval.ts', ['leak-check.ts']);
    assert.equal(run.status, 1, run.output);
    assert.match(
      run.output,
      /expected test\/fixtures\/test-infra\/leaves-an-interval\.ts to leave nothing open, got 1 resource still open after its last test: Timeout/,
    );
  });

  it('ends a file whose setup failed after starting a server, naming the server', () => {
    const run = runTestFile('leaves-a-server-when-setup-fails.ts', ['leak-check.ts']);
    assert.equal(run.status, 1, run.output);
    assert.match(run.output, /setup failed after starting a server/);
    assert.match(
      run.output,
      /still open after its last test: TCPServerWrap\n\s+- Server \(listening on \{"address":"127\.0\.0\.1"/,
    );
  });

  it('passes a file that closes what it opened in its own root after hook', () => {
    const run = runTestFile('closes-in-its-root-after.ts', ['leak-check.ts']);
    assert.equal(run.status, 0, run.output);
    assert.match(run.output, /✔ listens/);
  });

  it('fails a unit test that starts a process, naming the command', () => {
    const run = runTestFile('spawns-a-process.ts', ['leak-check.ts', 'spawns-nothing.ts']);
    assert.equal(run.status, 1, run.output);
    assert.match(run.output, /to spawn nothing \(a unit test\), got child_process\.spawnSync: true --from-a-unit-test/);
  });
});
