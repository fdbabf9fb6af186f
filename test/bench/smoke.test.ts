import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { startProcess } from '../helpers/process.ts';

const VERIFY_BENCH = fileURLToPath(new URL('../../bench/verify.bench.ts', import.meta.url));

// Keeps the suite from rotting: the quickest scenario runs end to end and writes its results. Not a timed assertion.
test('the verification benchmark runs in quick mode and writes a row per algorithm and path', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-smoke-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const bench = startProcess(process.execPath, [VERIFY_BENCH], { BENCH_QUICK: '1', BENCH_RESULTS_DIR: dir });
  t.after(() => bench.stop('SIGKILL'));
  assert.equal(await bench.exited, 0, bench.stderr());
  const written = JSON.parse(readFileSync(join(dir, 'verify.json'), 'utf8')) as {
    rows: Array<Record<string, unknown>>;
    checks: unknown[];
  };
  assert.equal(written.rows.length, 9);
  for (const row of written.rows) assert.ok(typeof row['ops/s'] === 'number' && row['ops/s'] > 0);
  assert.equal(written.checks.length, 6);
});
