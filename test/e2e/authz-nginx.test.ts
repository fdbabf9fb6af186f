/**
 * baton inside nginx: real Debian nginx (auth_request) in front of real
 * apps at every hop of the demo's three-hop chain, each nginx running
 * examples/nginx/ and asking its own `baton authz`, over the demo mesh's
 * control plane (test/helpers/authz-nginx.ts). Without nginx this fails,
 * naming the package: a skipped proxy proves nothing.
 *
 * The demo's own scenarios run through it (the same allowed and denied
 * chains as `baton demo`), with nginx's decision cache off (every request
 * asks baton at every hop) and on (answers reused for their max-age, never
 * one user's for another's), and in a mesh that mixes nginx + baton authz
 * with baton's sidecar, where `baton audit` and `policy observed` read the
 * trail across both modes.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { DEMO_POLICY } from '../../src/demo/mesh.ts';
import type { HopView } from '../../src/demo/apps.ts';
import { DEMO_USER, hops, postInbound, runScenarios } from '../../src/demo/scenario.ts';
import { assertDemoOutcome } from '../helpers/demo-outcome.ts';
import { type NginxAuthzMesh, startNginxAuthzMesh } from '../helpers/authz-nginx.ts';
import { waitFor } from '../helpers/net.ts';
import { runBaton } from '../helpers/process.ts';

interface Problem {
  code: string;
  status: number;
  rule?: string;
}

/** Decision lines written so far by each service's authorizer (or sidecar), for one subject. */
function decisions(m: NginxAuthzMesh, subject: string): Array<Record<string, unknown>> {
  return m.mesh.processes
    .filter((p) => /-(authz|sidecar)$/.test(p.name))
    .flatMap((p) =>
      p.logs.filter((l) => l.event === 'decision' && l.subject === subject).map((l) => ({ ...l, process: p.name })),
    );
}

async function checkout(
  m: NginxAuthzMesh,
  token: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; hops: HopView[]; body: unknown }> {
  const response = await request(`http://127.0.0.1:${m.mesh.services.gateway.entry}/checkout`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
    body: '{}',
  });
  const text = await response.body.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // nginx's own error page
  }
  return { status: response.statusCode, hops: hops(body), body };
}

/** A token for orders, exchanged by the gateway's authorizer for alice's handle: bound to the gateway's certificate. */
async function exchangedForOrders(m: NginxAuthzMesh, userToken: string): Promise<string> {
  const gateway = m.authz.gateway!;
  const entered = await request(`http://127.0.0.1:${gateway.http}/baton-authz/inbound/checkout`, {
    method: 'POST',
    headers: { authorization: `Bearer ${userToken}`, host: 'gateway' },
  });
  await entered.body.dump();
  const handle = entered.headers['baton-context'];
  assert.equal(typeof handle, 'string');
  const out = await request(`http://127.0.0.1:${gateway.http}/baton-authz/outbound/orders`, {
    method: 'POST',
    headers: { 'baton-context': handle as string, host: 'orders' },
  });
  await out.body.dump();
  const authorization = out.headers.authorization;
  assert.equal(typeof authorization, 'string');
  return (authorization as string).replace(/^Bearer /, '');
}

describe('nginx auth_request + baton authz at every hop, decision cache off', { timeout: 240_000 }, () => {
  let m: NginxAuthzMesh;

  before(async () => {
    m = await startNginxAuthzMesh({ cache: false });
  });
  after(async () => {
    await m?.stop();
  });

  it("runs the demo's allowed chain end to end (bound tokens, every hop's decision audited) and refuses its denied one with the policy's 403", async () => {
    assertDemoOutcome(await runScenarios(m.mesh), 'http');
  });

  it('asks baton at every hop for every request: five decision lines per allowed checkout', async () => {
    const token = await m.mesh.userToken({ ...DEMO_USER, sub: 'erin' });
    for (let i = 0; i < 3; i++) assert.equal((await checkout(m, token)).status, 200);
    await waitFor(async () => decisions(m, 'erin').length >= 15, { what: '15 decision lines', timeoutMs: 10_000 });
    assert.equal(decisions(m, 'erin').length, 15);
  });

  it("refuses a request without a token at the ingress: 401 with baton's challenge and problem document, the app not reached", async () => {
    const response = await request(`http://127.0.0.1:${m.mesh.services.gateway.entry}/checkout`, { method: 'POST' });
    assert.equal(response.statusCode, 401);
    assert.equal(response.headers['www-authenticate'], 'Bearer realm="baton"');
    assert.equal(response.headers['content-type'], 'application/problem+json');
    assert.equal(((await response.body.json()) as Problem).code, 'BATON_UNAUTHENTICATED');
  });

  it("never lets a caller's baton-* field reach the app: an identity field is replaced by baton's, any other baton-* field refuses the request (nginx answers 500)", async () => {
    const token = await m.mesh.userToken({ ...DEMO_USER, sub: 'frank' });
    const replaced = await checkout(m, token, { 'baton-subject': 'mallory', 'baton-chain': 'admin' });
    assert.equal(replaced.status, 200);
    assert.equal(replaced.hops[0]?.subject, 'frank');
    assert.equal(replaced.hops[0]?.chain, undefined, 'the entry hop has no chain, whatever the caller said');
    const foreign = await checkout(m, token, { 'baton-admin': 'yes' });
    assert.equal(foreign.status, 500);
    assert.deepEqual(foreign.hops, []);
  });

  it('refuses a mesh token at the ingress, which no outside caller can present the certificate of', async () => {
    const token = await exchangedForOrders(m, await m.mesh.userToken(DEMO_USER));
    const response = await request(`http://127.0.0.1:${m.mesh.services.gateway.entry}/checkout`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(response.statusCode, 401);
    const problem = (await response.body.json()) as Problem;
    assert.match(problem.code, /^BATON_TOKEN_/);
  });

  it("refuses a token bound to the gateway's certificate when another workload replays it at orders' nginx (BATON_TOKEN_CERT_MISMATCH), and takes it from the gateway's", async () => {
    const ids = m.mesh.identities!;
    const token = await exchangedForOrders(m, await m.mesh.userToken(DEMO_USER));
    const as = (service: string): Agent =>
      new Agent({
        connect: {
          cert: readFileSync(join(ids.dir, service, 'tls.crt')),
          key: readFileSync(join(ids.dir, service, 'tls.key')),
          ca: ids.bundle,
          servername: 'orders',
        },
      });
    const stolen = as('payments');
    const own = as('gateway');
    try {
      const replay = await request(`https://127.0.0.1:${m.nginx.orders!.inbound}/orders`, {
        method: 'GET',
        headers: { authorization: `Bearer ${token}`, host: 'orders' },
        dispatcher: stolen,
      });
      assert.equal(replay.statusCode, 401);
      assert.equal(((await replay.body.json()) as Problem).code, 'BATON_TOKEN_CERT_MISMATCH');
      const genuine = await request(`https://127.0.0.1:${m.nginx.orders!.inbound}/orders`, {
        method: 'GET',
        headers: { authorization: `Bearer ${token}`, host: 'orders' },
        dispatcher: own,
      });
      assert.equal(genuine.statusCode, 200);
      assert.equal(((await genuine.body.json()) as HopView).caller, 'gateway');
    } finally {
      await Promise.all([stolen.close(), own.close()]);
    }
  });
});

describe('nginx auth_request + baton authz at every hop, decision cache on', { timeout: 240_000 }, () => {
  let m: NginxAuthzMesh;

  before(async () => {
    // A minute, so the assertions below never race an expiry on a busy machine; the default is 5 s.
    m = await startNginxAuthzMesh({ cache: true, authz: { config: { http: { cacheMaxAgeSeconds: 60 } } } });
  });
  after(async () => {
    await m?.stop();
  });

  it("runs the demo's allowed and denied chains", async () => {
    assertDemoOutcome(await runScenarios(m.mesh), 'http');
  });

  it("answers a user's repeated request from nginx's cache at every hop: no new decision", async () => {
    const token = await m.mesh.userToken({ ...DEMO_USER, sub: 'grace' });
    const first = await checkout(m, token);
    assert.equal(first.status, 200);
    await waitFor(async () => decisions(m, 'grace').length >= 5, { what: "the first request's five decisions" });
    for (let i = 0; i < 4; i++) {
      const again = await checkout(m, token);
      assert.equal(again.status, 200);
      assert.deepEqual(
        again.hops.map((h) => [h.service, h.subject, h.chain ?? '']),
        [
          ['gateway', 'grace', ''],
          ['orders', 'grace', 'gateway'],
          ['payments', 'grace', 'gateway,orders'],
        ],
      );
    }
    // Give any straggling line time to arrive before counting: none may.
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(decisions(m, 'grace').length, 5);
  });

  it("never answers one user from another user's cache entry: the same request with another user's token is asked anew at every hop, and each hop sees that user", async () => {
    const alice = await m.mesh.userToken({ ...DEMO_USER, sub: 'henry' });
    const bob = await m.mesh.userToken({ ...DEMO_USER, sub: 'ivan' });
    assert.equal((await checkout(m, alice)).status, 200);
    const asBob = await checkout(m, bob);
    assert.equal(asBob.status, 200);
    assert.deepEqual(
      asBob.hops.map((h) => h.subject),
      ['ivan', 'ivan', 'ivan'],
    );
    await waitFor(async () => decisions(m, 'ivan').length >= 5, { what: "ivan's five decisions" });
    assert.ok(decisions(m, 'ivan').every((d) => d.decision === 'allow'));
    // A token with another payload under alice's signature: not her entry, and refused.
    const [header, , signature] = alice.split('.');
    const claims = JSON.parse(Buffer.from(alice.split('.')[1] as string, 'base64url').toString()) as Record<
      string,
      unknown
    >;
    const forged = `${header}.${Buffer.from(JSON.stringify({ ...claims, sub: 'mallory' })).toString('base64url')}.${signature}`;
    const replayed = await checkout(m, forged);
    assert.equal(replayed.status, 401);
    assert.deepEqual(replayed.hops, []);
  });

  it("never reuses an answer past its max-age, which is never past the token's exp: asked again once it has passed", async () => {
    const form = new URLSearchParams({
      sub: 'kim',
      scope: DEMO_USER.scope,
      acr: DEMO_USER.acr,
      aud: 'gateway',
      ttl: '2',
    });
    const issued = await request(`${m.mesh.idpUrl}/dev/token`, {
      method: 'POST',
      body: form.toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    const token = ((await issued.body.json()) as { access_token: string }).access_token;
    assert.equal((await checkout(m, token)).status, 200);
    await waitFor(
      async () =>
        decisions(m, 'kim').filter((d) => d.direction === 'inbound' && d.process === 'gateway-authz').length >= 1,
      { what: "kim's first decision at the gateway" },
    );
    // The answer said max-age ≤ 2 (the token's exp), though the authorizers allow 60: past it, nginx asks again.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    await checkout(m, token);
    await waitFor(
      async () =>
        decisions(m, 'kim').filter((d) => d.direction === 'inbound' && d.process === 'gateway-authz').length >= 2,
      { what: "kim's second decision at the gateway" },
    );
  });

  it('never caches a refusal: a denied call is decided again each time', async () => {
    const token = await m.mesh.userToken({ ...DEMO_USER, sub: 'judy' });
    for (let i = 0; i < 2; i++) {
      const denied = await postInbound(m.mesh.services.gateway.entry, '/direct-charge', `Bearer ${token}`);
      assert.equal(denied.status, 403);
    }
    await waitFor(async () => decisions(m, 'judy').filter((d) => d.decision === 'deny').length >= 2, {
      what: 'two deny lines',
    });
  });
});

describe(
  "a mesh mixing both modes: gateway and payments behind nginx + baton authz, orders with baton's sidecar",
  { timeout: 240_000 },
  () => {
    let m: NginxAuthzMesh;
    const logs = mkdtempSync(join(tmpdir(), 'baton-mixed-logs-'));

    before(async () => {
      m = await startNginxAuthzMesh({ cache: false, sidecars: ['orders'] });
    });
    after(async () => {
      await m?.stop();
      rmSync(logs, { recursive: true, force: true });
    });

    it("runs the demo's chains across both modes, and baton audit and policy observed read the one trail", async () => {
      const { allowed } = assertDemoOutcome(await runScenarios(m.mesh), 'http');
      assert.deepEqual(allowed.decisions.map((d) => `${d.service}/${d.direction}`).sort(), [
        'gateway/inbound',
        'gateway/outbound',
        'orders/inbound',
        'orders/outbound',
        'payments/inbound',
      ]);
      for (const p of m.mesh.processes) writeFileSync(join(logs, `${p.name}.log`), p.output());
      const requestId = allowed.hops[0]?.request as string;
      const audit = await runBaton(['audit', '--request', requestId, '--json', logs]);
      assert.equal(audit.code, 0, audit.stderr);
      const trail = JSON.parse(audit.stdout) as {
        events: Array<{ service: string; direction?: string; decision?: string }>;
      };
      const seen = trail.events
        .filter((e) => e.direction !== undefined && e.decision !== undefined)
        .map((e) => `${e.service}/${e.direction}`)
        .sort();
      assert.deepEqual(seen, [
        'gateway/inbound',
        'gateway/outbound',
        'orders/inbound',
        'orders/outbound',
        'payments/inbound',
      ]);
      const observed = await runBaton(['policy', 'observed', '--logs', logs, '--policy', DEMO_POLICY, '--json']);
      assert.equal(observed.code, 0, observed.stderr);
      const report = JSON.parse(observed.stdout) as { edges: Array<{ from: string; to: string; calls: number }> };
      for (const [from, to] of [
        ['gateway', 'orders'],
        ['orders', 'payments'],
      ])
        assert.ok(
          report.edges.some((e) => e.from === from && e.to === to && e.calls >= 1),
          `${from} → ${to} observed: ${observed.stdout.slice(0, 2000)}`,
        );
    });
  },
);
