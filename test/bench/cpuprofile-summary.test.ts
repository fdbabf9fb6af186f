import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { startProcess } from '../helpers/process.ts';

const SUMMARY = fileURLToPath(new URL('../../bench/lib/cpuprofile-summary.ts', import.meta.url));

const frame = (functionName: string, url = '', lineNumber = 0) => ({ functionName, url, lineNumber });

// A profile of 10 ms: 5 idle, 3 in `forward` (2 of them in `request` below it), 2 in the garbage collector.
const PROFILE = {
  nodes: [
    { id: 1, callFrame: frame('(root)'), children: [2, 3, 5] },
    { id: 2, callFrame: frame('(idle)') },
    { id: 3, callFrame: frame('forward', 'file:///x/sidecar.mjs', 9), children: [4] },
    { id: 4, callFrame: frame('request', 'node:internal/http2/core', 1818) },
    { id: 5, callFrame: frame('(garbage collector)') },
  ],
  samples: [2, 2, 2, 2, 2, 3, 4, 4, 5, 5],
  timeDeltas: Array.from({ length: 10 }, () => 1000),
};

test('the profile summary gives self and inclusive time as shares of the busy time, idle left out', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-cpuprofile-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'x.cpuprofile');
  writeFileSync(file, JSON.stringify(PROFILE));
  const run = startProcess(process.execPath, [SUMMARY, file, '10']);
  t.after(() => run.stop('SIGKILL'));
  assert.equal(await run.exited, 0);
  const out = run.stdout();
  assert.match(out, /0\.01 s sampled, 0\.01 s busy \(50\.0%\)/);
  assert.match(out, /self time[^]*40\.0% +20\.0% {2}request core:1819[^]*inclusive time/);
  assert.match(out, /inclusive time[^]*60\.0% {2}forward sidecar\.mjs:10/);
  assert.doesNotMatch(out, /\(idle\)/);
});
