import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { startProcess } from '../helpers/process.ts';

const GRPC_BENCH = fileURLToPath(new URL('../../bench/grpc.bench.ts', import.meta.url));

interface Written {
  rows: Array<Record<string, unknown>>;
  fetch: Array<Record<string, unknown>>;
  checks: Array<{ target: string; met: boolean }>;
  baselines: Record<string, string | undefined>;
}

// Keeps scenario 8 from rotting: h2load, the nginx grpc_pass pair, both meshes and both HTTP clients run end
// to end in quick mode (about 20 s here) and write their rows. Not a timed assertion: no figure is checked.
test(
  'the gRPC benchmark runs in quick mode: a row per gRPC path and per HTTP client, every call served',
  { timeout: 120_000 },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-bench-grpc-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const bench = startProcess(process.execPath, [GRPC_BENCH], { BENCH_QUICK: '1', BENCH_RESULTS_DIR: dir });
    t.after(() => bench.stop('SIGKILL'));
    assert.equal(await bench.exited, 0, bench.stderr());
    const written = JSON.parse(readFileSync(join(dir, 'grpc.json'), 'utf8')) as Written;
    assert.deepEqual(
      written.rows.map((row) => row.path),
      ['direct', 'nginx grpc_pass pair', 'baton pair', 'floor: bare node:http2 proxy pair'],
    );
    for (const row of written.rows) {
      assert.ok(
        typeof row['saturated calls/s'] === 'number' && row['saturated calls/s'] > 0,
        `${String(row.path)} answered calls`,
      );
      assert.equal(row.errors, 0, `${String(row.path)} served every call it answered 200`);
    }
    assert.deepEqual(
      written.fetch.map((row) => row.client),
      ['fetch, CONNECT tunnel (undici ProxyAgent)', 'node:http, absolute-form'],
    );
    for (const row of written.fetch) assert.equal(row.errors, 0, String(row.client));
    assert.equal(written.checks.length, 3);
    // The baseline says how it ran: grpc_pass, HTTP/2 in, one worker.
    const outer = written.baselines['outer nginx (grpc_pass pair)'] ?? '';
    assert.match(outer, /grpc_pass grpc:\/\/app;/);
    assert.match(outer, /listen 127\.0\.0\.1:\d+ http2;/);
    assert.match(outer, /worker_processes 1;/);
    const markdown = readFileSync(join(dir, 'grpc.md'), 'utf8');
    assert.match(markdown, /### Baselines, as configured[\s\S]*grpc_pass grpc:\/\/app;/);
    assert.match(markdown, /### fetch and node:http through the outbound port/);
  },
);
