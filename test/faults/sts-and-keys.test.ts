/**
 * Fault matrix rows for the STS and its keys (DESIGN.md, "Failure
 * behaviour"): STS down, slow, answering garbage; the JWKS endpoint down
 * after start. Through real processes and a TCP fault proxy.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import { request } from 'undici';
import { compact, es256 } from '../helpers/security-mesh.ts';
import { type FaultMesh, startFaultMesh } from '../helpers/fault-mesh.ts';
import { ExchangeRefusedError, StsThrottledError, StsUnavailableError } from '../../src/sidecar/exchange/errors.ts';
import { TokenExpiredError } from '../../src/token/errors.ts';
import { TokenUnknownKidError } from '../../src/token/errors.ts';

describe('faults: the STS and its keys', { timeout: 90_000 }, () => {
  let mesh: FaultMesh;
  before(async () => {
    mesh = await startFaultMesh();
  });
  after(async () => {
    await mesh?.stop();
  });
  // Each row starts from a healthy mesh, whatever the row before it left
  // behind (an open circuit, a cut proxy, a restarted STS), so that no row
  // depends on another having run: every proxy passes, and an exchange for
  // a fresh subject answers 200, which also shows the circuit closed.
  beforeEach(async () => {
    for (const proxy of Object.values(mesh.proxies)) proxy?.set({ kind: 'pass' }, { cut: true });
    assert.equal(
      await waitForStatus(200, async () => (await mesh.charge(await mesh.handle())).status, 20_000),
      200,
      'a healthy mesh before the row',
    );
  });

  async function inbound(token: string): Promise<{ status: number; code?: string }> {
    const r = await request(`http://127.0.0.1:${mesh.ports.inbound}/orders`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const body = await r.body.text();
    return {
      status: r.statusCode,
      ...(body.startsWith('{"type"') ? { code: (JSON.parse(body) as { code: string }).code } : {}),
    };
  }

  it('STS down: a cached exchanged token keeps working, an uncached exchange is 503, nothing reaches the upstream unauthenticated', async () => {
    const cached = await mesh.handle();
    assert.equal((await mesh.charge(cached)).status, 200);
    mesh.proxies.sts.set({ kind: 'reset' }, { cut: true });
    try {
      const hits = mesh.payments.hits;
      assert.equal((await mesh.charge(cached)).status, 200);
      assert.equal(mesh.payments.hits, hits + 1);
      const fresh = await mesh.handle();
      const started = Date.now();
      const refused = await mesh.charge(fresh);
      assert.equal(refused.status, 503);
      assert.equal(refused.code, StsUnavailableError.code);
      assert.ok(Date.now() - started < 3_000);
      assert.equal(mesh.payments.hits, hits + 1);
      // The circuit is open now: further calls fail fast instead of queueing on a dead STS.
      for (let i = 0; i < 5; i++) assert.equal((await mesh.charge(await mesh.handle())).status, 503);
    } finally {
      mesh.proxies.sts.set({ kind: 'pass' });
    }
  });

  it('STS slow beyond the client timeout: 503, bounded in time, then recovers', async () => {
    mesh.proxies.sts.set({ kind: 'blackhole' }, { cut: true });
    try {
      const hits = mesh.payments.hits;
      const started = Date.now();
      const slow = await mesh.charge(await mesh.handle());
      assert.equal(slow.status, 503);
      assert.ok(Date.now() - started < 4_000, `took ${Date.now() - started} ms`);
      assert.equal(mesh.payments.hits, hits);
    } finally {
      mesh.proxies.sts.set({ kind: 'pass' }, { cut: true });
    }
    const recovered = await waitForStatus(200, async () => (await mesh.charge(await mesh.handle())).status, 15_000);
    assert.equal(recovered, 200);
  });

  it('STS answering garbage: 503, and nothing reaches the upstream', async () => {
    await mesh.stopSts();
    const garbage: Server = createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(req.url === '/token' ? '{"access_token": 42, "token_type": "Bearer", "expires_in": "soon"' : 'not json');
    });
    await new Promise<void>((resolve) => garbage.listen(mesh.ports.sts, '127.0.0.1', resolve));
    mesh.proxies.sts.set({ kind: 'pass' }, { cut: true });
    try {
      const hits = mesh.payments.hits;
      const answer = await mesh.charge(await mesh.handle());
      assert.ok(answer.status === 503 || answer.status === 502, `got ${answer.status}`);
      assert.equal(mesh.payments.hits, hits);
    } finally {
      garbage.closeAllConnections();
      await new Promise<void>((resolve) => garbage.close(() => resolve()));
      await mesh.restartSts();
    }
    mesh.proxies.sts.set({ kind: 'pass' }, { cut: true });
    assert.equal(await waitForStatus(200, async () => (await mesh.charge(await mesh.handle())).status, 20_000), 200);
  });

  it("STS answering well-formed but unusable: expired tokens and 429s are the request's error, never an outage that opens the circuit", async () => {
    await mesh.stopSts();
    let answers = 0;
    // A token endpoint that answers: first tokens already expired, then 429s, then a refusal.
    const unusable: Server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        answers++;
        res.setHeader('content-type', 'application/json');
        if (answers <= 6)
          res.writeHead(200).end(
            JSON.stringify({
              access_token: `expired-${answers}`,
              token_type: 'Bearer',
              expires_in: 0,
              issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
            }),
          );
        else if (answers <= 12)
          res.writeHead(429, { 'retry-after': '1' }).end(JSON.stringify({ error: 'temporarily_unavailable' }));
        else res.writeHead(400).end(JSON.stringify({ error: 'invalid_target', error_description: 'refused' }));
      });
    });
    await new Promise<void>((resolve) => unusable.listen(mesh.ports.sts, '127.0.0.1', resolve));
    mesh.proxies.sts.set({ kind: 'pass' }, { cut: true });
    try {
      const hits = mesh.payments.hits;
      const seen: Array<string | undefined> = [];
      // Each call a fresh subject, so nothing is cached: 6 expired, 6 throttled, then refusals.
      for (let i = 0; i < 14; i++) seen.push((await mesh.charge(await mesh.handle())).code);
      assert.deepEqual(seen.slice(0, 6), Array(6).fill(TokenExpiredError.code));
      assert.deepEqual(seen.slice(6, 12), Array(6).fill(StsThrottledError.code));
      // With these counted as outages the circuit would be open now, and these would be BATON_STS_UNAVAILABLE.
      assert.deepEqual(seen.slice(12), [ExchangeRefusedError.code, ExchangeRefusedError.code]);
      assert.equal(answers, 14);
      assert.equal(mesh.payments.hits, hits);
    } finally {
      unusable.closeAllConnections();
      await new Promise<void>((resolve) => unusable.close(() => resolve()));
      await mesh.restartSts();
    }
    mesh.proxies.sts.set({ kind: 'pass' }, { cut: true });
    assert.equal(await waitForStatus(200, async () => (await mesh.charge(await mesh.handle())).status, 20_000), 200);
  });

  it('JWKS endpoint down after start: the last good keys keep verifying, an unknown kid is still 401', async () => {
    mesh.proxies.jwks.set({ kind: 'reset' }, { cut: true });
    try {
      assert.equal((await inbound(mesh.ordersToken())).status, 200);
      const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const rotated = compact(
        { alg: 'ES256', typ: 'at+jwt', kid: `rotated-${randomUUID()}` },
        {
          iss: mesh.stsUrl,
          sub: 'a',
          sub_type: 'user',
          aud: 'orders',
          client_id: 'gateway',
          act: { sub: 'gateway' },
          exp: Math.floor(Date.now() / 1000) + 60,
        },
        es256(stranger.privateKey),
      );
      const before = mesh.app.hits;
      const refused = await inbound(rotated);
      assert.equal(refused.status, 401);
      assert.equal(refused.code, TokenUnknownKidError.code);
      assert.equal(mesh.app.hits, before);
      const ready = await request(`http://127.0.0.1:${mesh.ports.admin}/readyz`);
      await ready.body.dump();
      assert.equal(ready.statusCode, 200, 'last good keys keep the sidecar ready');
    } finally {
      mesh.proxies.jwks.set({ kind: 'pass' });
    }
  });
});

async function waitForStatus(expected: number, probe: () => Promise<number>, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = 0;
  while (Date.now() < deadline) {
    last = await probe().catch(() => 0);
    if (last === expected) return last;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return last;
}
