/**
 * Fault matrix rows for the policy server and Redis (DESIGN.md, "Failure
 * behaviour"): the last good policy survives an unreachable server, an
 * older version, a bad signature and garbage; Redis down, slow or flapping
 * costs callers nothing. Real processes, a real redis-server, a TCP fault proxy.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { waitFor } from '../helpers/net.ts';
import { startBaton } from '../helpers/process.ts';
import { FAULT_POLICY, type FaultMesh, startFaultMesh } from '../helpers/fault-mesh.ts';

describe('faults: the policy server and Redis', { timeout: 90_000 }, () => {
  let mesh: FaultMesh;
  before(async () => {
    mesh = await startFaultMesh({ redis: true });
  });
  after(async () => {
    await mesh?.stop();
  });

  async function orders(path: string): Promise<number> {
    const r = await request(`http://127.0.0.1:${mesh.ports.inbound}${path}`, {
      headers: { authorization: `Bearer ${mesh.ordersToken()}` },
    });
    await r.body.dump();
    return r.statusCode;
  }

  /** Serves `body` for the policy endpoint on the policy server's port while the real one is stopped. */
  async function impostor(body: string | Buffer, headers: Record<string, string>): Promise<Server> {
    await mesh.stopPolicyServer();
    const server = createServer((req, res) => {
      req.resume();
      res.writeHead(200, headers);
      res.end(body);
    });
    await new Promise<void>((resolve) => server.listen(mesh.ports.policy, '127.0.0.1', resolve));
    mesh.proxies.policy.set({ kind: 'pass' }, { cut: true });
    return server;
  }

  /** Policy documents the orders sidecar has refused so far (one log line each). */
  const refusals = (): number => mesh.orders.stdout().split('policy refused; keeping the last good policy').length - 1;

  async function dismiss(server: Server): Promise<void> {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await mesh.startPolicyServer();
    mesh.proxies.policy.set({ kind: 'pass' }, { cut: true });
  }

  it('keeps the last good policy through an unreachable server, a rollback, a bad signature and garbage', async (t) => {
    const first = await mesh.policyVersion();
    assert.ok(first >= 1);
    const signedV1 = await request(`http://127.0.0.1:${mesh.ports.policy}/v1/callgraph`);
    const v1 = Buffer.from(await signedV1.body.arrayBuffer());
    const v1Headers = { 'content-type': String(signedV1.headers['content-type']) };
    assert.equal(await orders('/orders/new-route'), 200);
    assert.equal(await orders('/extra'), 403);

    // A new version that allows /extra reaches the sidecar (and the file is put back after the row).
    writeFileSync(mesh.policyFile, FAULT_POLICY(', "/extra"'));
    t.after(() => writeFileSync(mesh.policyFile, FAULT_POLICY()));
    await waitFor(async () => (await mesh.policyVersion()) > first, { timeoutMs: 15_000, what: 'policy v2' });
    const second = await mesh.policyVersion();
    assert.equal(await orders('/extra'), 200);

    // Server down: the sidecar's next poll (a new connection) is reset.
    const polled = mesh.proxies.policy.connections();
    mesh.proxies.policy.set({ kind: 'reset' }, { cut: true });
    await waitFor(async () => mesh.proxies.policy.connections() > polled, {
      what: 'a poll against the dead policy server',
      timeoutMs: 10_000,
    });
    assert.equal(await orders('/extra'), 200);
    assert.equal(await mesh.policyVersion(), second);
    mesh.proxies.policy.set({ kind: 'pass' });

    const cases: Array<[string, Buffer | string]> = [
      ['an older version (v1, validly signed)', v1],
      ['a bad signature', Buffer.concat([v1.subarray(0, v1.length - 12), Buffer.from('AAAAAAAAAAAA')])],
      ['garbage', '{"payload": "not a jws"'],
    ];
    for (const [what, body] of cases) {
      const refusedBefore = refusals();
      const server = await impostor(body, v1Headers);
      try {
        // A restarted real server republishes the same policy under a newer
        // version (versions are never reused), so compare with what the
        // sidecar held when the impostor took over.
        const held = await mesh.policyVersion();
        assert.ok(held >= second, what);
        // The sidecar logs each document it refuses: wait until it has judged the impostor's.
        await waitFor(async () => refusals() > refusedBefore, {
          what: `the sidecar refusing ${what}`,
          timeoutMs: 15_000,
        });
        assert.equal(await mesh.policyVersion(), held, what);
        assert.equal(await orders('/extra'), 200, `${what}: the v2 decision still holds`);
        const ready = await request(`http://127.0.0.1:${mesh.ports.admin}/readyz`);
        await ready.body.dump();
        assert.equal(ready.statusCode, 200, what);
      } finally {
        await dismiss(server);
      }
    }
  });

  it('is not ready, and refuses every request, with no policy at start', async () => {
    mesh.proxies.policy.set({ kind: 'reset' }, { cut: true });
    const config = `${mesh.dir}/orders.yaml`;
    const sidecar = startBaton([
      'sidecar',
      '--config',
      config,
      '--inbound-port',
      '0',
      '--outbound-port',
      '0',
      '--admin-port',
      '0',
    ]);
    try {
      await sidecar.waitForOutput(/"msg":"sidecar listening"/, 15_000);
      const line = (sidecar.stdout() + sidecar.stderr())
        .split('\n')
        .find((l) => l.includes('"msg":"sidecar listening"')) as string;
      const { inbound, admin } = JSON.parse(line) as { inbound: number; admin: number };
      const hits = mesh.app.hits;
      for (let i = 0; i < 3; i++) {
        const ready = await request(`http://127.0.0.1:${admin}/readyz`);
        await ready.body.dump();
        assert.equal(ready.statusCode, 503);
        const r = await request(`http://127.0.0.1:${inbound}/orders`, {
          headers: { authorization: `Bearer ${mesh.ordersToken()}` },
        });
        await r.body.dump();
        assert.equal(r.statusCode, 503);
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      assert.equal(mesh.app.hits, hits);
    } finally {
      await sidecar.stop();
      mesh.proxies.policy.set({ kind: 'pass' });
    }
  });

  it('Redis down, slow and flapping: every exchange still answers 200, quickly', async () => {
    const redis = mesh.proxies.redis;
    assert.ok(redis);
    assert.equal((await mesh.charge(await mesh.handle())).status, 200);
    const modes = [{ kind: 'reset' as const }, { kind: 'blackhole' as const }, { kind: 'latency' as const, ms: 1_000 }];
    for (const mode of modes) {
      redis.set(mode, { cut: true });
      for (let i = 0; i < 5; i++) {
        const started = Date.now();
        const r = await mesh.charge(await mesh.handle());
        assert.equal(r.status, 200, `${mode.kind}: ${r.code}`);
        assert.ok(Date.now() - started < 1_500, `${mode.kind}: took ${Date.now() - started} ms`);
      }
    }
    // Flapping: up and down every 150 ms while calls keep coming.
    let up = true;
    const flap = setInterval(() => {
      up = !up;
      redis.set(up ? { kind: 'pass' } : { kind: 'reset' }, { cut: true });
    }, 150);
    try {
      const answers = await Promise.all(
        Array.from({ length: 30 }, async (_, i) => {
          await new Promise((resolve) => setTimeout(resolve, i * 40));
          return (await mesh.charge(await mesh.handle())).status;
        }),
      );
      assert.deepEqual([...new Set(answers)], [200]);
    } finally {
      clearInterval(flap);
      redis.set({ kind: 'pass' });
    }
  });
});
