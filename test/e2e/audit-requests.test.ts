import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startMesh } from '../../src/demo/mesh.ts';
import { DEMO_USER, hops, postInbound } from '../../src/demo/scenario.ts';
import type { HopView } from '../../src/demo/apps.ts';
import type { AuditTrail } from '../../src/telemetry/audit-trail.ts';
import { runBaton } from '../helpers/process.ts';

describe('baton audit, one request at a time, with tracing off', { timeout: 90_000 }, () => {
  const logDir = mkdtempSync(join(tmpdir(), 'baton-audit-requests-'));
  const seen: HopView[][] = [];

  before(async () => {
    // No OTEL_* settings: no trace context anywhere, and the demo apps pass none on.
    const mesh = await startMesh({ logDir });
    try {
      const token = await mesh.userToken(DEMO_USER);
      // Three requests with one user token: one txn.
      for (let i = 0; i < 3; i++) {
        const answer = await postInbound(mesh.services.gateway.entry, '/checkout', `Bearer ${token}`);
        assert.equal(answer.status, 200);
        seen.push(hops(answer.body));
      }
    } finally {
      // stop() returns once every process's output is read and in its log file.
      await mesh.stop();
    }
  });
  after(() => rmSync(logDir, { recursive: true, force: true }));

  it('gives every request its own id, the same at each hop, with no trace context from the apps', () => {
    const ids = seen.map((chain) => chain.map((hop) => hop.request));
    for (const chain of ids) {
      assert.equal(chain.length, 3);
      assert.match(String(chain[0]), /^[A-Za-z0-9_-]{16}$/);
      assert.ok(
        chain.every((id) => id === chain[0]),
        `one id across the hops: ${chain.join(' ')}`,
      );
    }
    assert.equal(new Set(ids.map((chain) => chain[0])).size, 3, 'three requests, three ids');
    assert.equal(new Set(seen.map((chain) => chain[0]?.txn)).size, 1, 'and one txn, since the token was the same');
  });

  it('--txn shows each request on its own: three chains of three hops, not one of nine', async () => {
    const txn = String(seen[0]?.[0]?.txn);
    const { code, stdout } = await runBaton(['audit', `--txn=${txn}`, '--json', logDir]);
    assert.equal(code, 0);
    const trail = JSON.parse(stdout) as AuditTrail;
    assert.deepEqual(
      trail.requests.map((r) => r.request),
      seen.map((chain) => chain[0]?.request),
    );
    for (const request of trail.requests) assert.deepEqual(request.hops, ['gateway', 'orders', 'payments']);
    // The STS minted for the first request only (the others hit the sidecars' caches), and its lines say so.
    const sts = trail.events.filter((e) => e.component === 'sts');
    assert.ok(sts.length >= 2, `the first request's two exchanges, got ${sts.length}`);
    assert.ok(sts.every((e) => e.request === seen[0]?.[0]?.request));

    const text = await runBaton(['audit', `--txn=${txn}`, logDir]);
    assert.match(text.stdout, /3 requests under this txn/);
    assert.equal(text.stdout.match(/^hops: {4}gateway → orders → payments$/gm)?.length, 3);
  });

  it('--request shows that request alone', async () => {
    const request = String(seen[1]?.[0]?.request);
    const { code, stdout } = await runBaton(['audit', `--request=${request}`, '--json', logDir]);
    assert.equal(code, 0);
    const trail = JSON.parse(stdout) as AuditTrail;
    assert.equal(trail.requests.length, 1);
    assert.deepEqual(trail.hops, ['gateway', 'orders', 'payments']);
    assert.ok(trail.events.every((e) => e.request === request));
    assert.equal(trail.events.filter((e) => e.direction === 'inbound').length, 3);
  });

  it('refuses a malformed --request with exit status 2', async () => {
    const { code, stderr } = await runBaton(['audit', '--request', 'not an id', logDir]);
    assert.equal(code, 2);
    assert.match(stderr, /--request/);
    const missing = await runBaton(['audit', '--request', '--json', logDir]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--request/);
  });

  it('takes a request id or txn that starts with a dash (one in 64 does) as the value after --request and --txn', async () => {
    // The same logs with the last request's id and the txn respelt to start with '-'.
    const request = String(seen[2]?.[0]?.request);
    const txn = String(seen[0]?.[0]?.txn);
    const dashed = { request: `-${request.slice(1)}`, txn: `-${txn.slice(1)}` };
    const dir = mkdtempSync(join(tmpdir(), 'baton-audit-dashed-'));
    try {
      for (const file of readdirSync(logDir))
        writeFileSync(
          join(dir, file),
          readFileSync(join(logDir, file), 'utf8').replaceAll(request, dashed.request).replaceAll(txn, dashed.txn),
        );
      const one = await runBaton(['audit', '--request', dashed.request, '--json', dir]);
      assert.equal(one.code, 0, one.stderr);
      const trail = JSON.parse(one.stdout) as AuditTrail;
      assert.deepEqual(trail.hops, ['gateway', 'orders', 'payments']);
      assert.ok(trail.events.every((e) => e.request === dashed.request));
      const all = await runBaton(['audit', '--txn', dashed.txn, '--json', dir]);
      assert.equal(all.code, 0, all.stderr);
      assert.equal((JSON.parse(all.stdout) as AuditTrail).requests.length, 3);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
