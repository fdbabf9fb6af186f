import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import {
  compile,
  FakeSts,
  SHOP,
  startApp,
  startTestSidecar,
  type TestApp,
  type TestSidecar,
} from '../helpers/sidecar.ts';
import { BadRequestError, NotReadyError, OverloadedError } from '../../src/core/errors.ts';
import { PolicyDeniedError } from '../../src/policy/language/errors.ts';
import {
  StepUpRequiredError,
  UnauthenticatedError,
  UpstreamTimeoutError,
  UpstreamUnreachableError,
} from '../../src/sidecar/errors.ts';
import { TokenBadSignatureError } from '../../src/token/errors.ts';
import { waitFor } from '../helpers/net.ts';

describe('sidecar inbound', () => {
  const sts = new FakeSts();
  let app: TestApp;
  let orders: TestSidecar;
  let gateway: TestSidecar;

  before(async () => {
    app = await startApp();
    orders = await startTestSidecar(sts, { service: 'orders', app: app.url });
    gateway = await startTestSidecar(sts, { service: 'gateway', app: app.url });
  });
  after(async () => {
    await orders.close();
    await gateway.close();
    await app.close();
  });

  async function call(
    sidecar: TestSidecar,
    path: string,
    headers: Record<string, string | string[]> = {},
    method = 'GET',
  ) {
    const response = await request(sidecar.url('inbound', path), { method: method as 'GET', headers });
    const text = await response.body.text();
    return {
      status: response.statusCode,
      headers: response.headers,
      text,
      json: () => JSON.parse(text) as Record<string, unknown>,
    };
  }

  it('answers a request without a token with 401 and a bare Bearer challenge (RFC 6750 §3.1)', async () => {
    const r = await call(orders, '/orders');
    assert.equal(r.status, 401);
    assert.equal(r.headers['www-authenticate'], 'Bearer realm="baton"');
    assert.equal(r.headers['content-type'], 'application/problem+json');
    assert.equal(r.json().code, UnauthenticatedError.code);
  });

  it('answers an unverifiable token with 401 invalid_token and never echoes it', async () => {
    const token = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2ln';
    const r = await call(orders, '/orders', { authorization: `Bearer ${token}` });
    assert.equal(r.status, 401);
    assert.match(String(r.headers['www-authenticate']), /error="invalid_token"/);
    assert.equal(r.json().code, TokenBadSignatureError.code);
    assert.ok(!r.text.includes(token));
    assert.ok(!orders.logs.raw.join('').includes(token));
  });

  it('refuses a token outside the JWS alphabet or over the size limit before verifying it', async () => {
    const before = orders.verifyCalls;
    const odd = await call(orders, '/orders', { authorization: 'Bearer abc"def' });
    const large = await call(orders, '/orders', { authorization: `Bearer ${'a'.repeat(9000)}` });
    assert.equal(odd.status, 401);
    assert.equal(large.status, 401);
    assert.equal(odd.json().code, UnauthenticatedError.code);
    assert.equal(orders.verifyCalls, before);
  });

  it('refuses two Authorization headers with 400', async () => {
    const token = sts.meshToken('orders', ['gateway']);
    const r = await call(orders, '/orders', { authorization: [`Bearer ${token}`, `Bearer ${token}`] });
    assert.equal(r.status, 400);
    assert.equal(r.json().code, BadRequestError.code);
  });

  it('forwards an allowed chain with the verified identity headers and without the bearer token', async () => {
    const token = sts.meshToken('orders', ['gateway'], { sub: 'alice', scopes: ['orders:read', 'a'] });
    const r = await call(orders, '/orders/42?x=1', { authorization: `Bearer ${token}`, 'x-request-id': 'req-1' });
    assert.equal(r.status, 200);
    const seen = app.seen.at(-1);
    assert.ok(seen);
    assert.equal(seen.url, '/orders/42?x=1');
    assert.equal(seen.headers['baton-subject'], 'alice');
    assert.equal(seen.headers['baton-caller'], 'gateway');
    assert.equal(seen.headers['baton-chain'], 'gateway');
    assert.equal(seen.headers['baton-scope'], 'a orders:read');
    assert.equal(seen.headers['baton-txn'], 'txn-1');
    assert.match(String(seen.headers['baton-context']), /^bctx_/);
    assert.equal(seen.headers['x-request-id'], 'req-1');
    assert.equal(seen.headers.authorization, undefined);
  });

  it('never lets a caller-sent baton-* header reach the app, whatever its case or spelling', async () => {
    const token = sts.meshToken('orders', ['gateway'], { sub: 'alice' });
    const r = await call(orders, '/orders', {
      authorization: `Bearer ${token}`,
      'Baton-Subject': 'admin',
      'BATON-CHAIN': 'root',
      baton_caller: 'root',
      'bAtOn-Anything': 'x',
      'baton-context': 'bctx_forged',
    });
    assert.equal(r.status, 200);
    const seen = app.seen.at(-1);
    assert.ok(seen);
    assert.equal(seen.headers['baton-subject'], 'alice');
    assert.equal(seen.headers['baton-chain'], 'gateway');
    assert.equal(seen.headers['baton-caller'], 'gateway');
    assert.notEqual(seen.headers['baton-context'], 'bctx_forged');
    const names = seen.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    assert.equal(names.filter((n) => n === 'baton-subject').length, 1);
    assert.ok(!names.includes('baton_caller'));
    assert.ok(!names.includes('baton-anything'));
  });

  it('strips hop-by-hop headers, including those Connection names (RFC 9110 §7.6.1)', async () => {
    const token = sts.meshToken('orders', ['gateway']);
    // node:http, not undici: undici refuses to send a Connection header naming other fields.
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = httpRequest(
        orders.url('inbound', '/orders'),
        {
          headers: {
            authorization: `Bearer ${token}`,
            connection: 'keep-alive, x-secret-hop',
            'x-secret-hop': 'v',
            'x-kept': 'k',
          },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode));
        },
      );
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 200);
    const seen = app.seen.at(-1);
    assert.equal(seen?.headers['x-secret-hop'], undefined);
    assert.equal(seen?.headers['x-kept'], 'k');
  });

  it('marks a token from an external IdP as caller "external" at an entrypoint', async () => {
    const token = sts.userToken('gateway', { sub: 'bob', scopes: ['shop'] });
    const r = await call(gateway, '/', { authorization: `Bearer ${token}` });
    assert.equal(r.status, 200);
    const seen = app.seen.at(-1);
    assert.equal(seen?.headers['baton-caller'], 'external');
    assert.equal(seen?.headers['baton-chain'], undefined);
  });

  it('starts a new request id for a caller from outside the mesh, ignoring any it sent', async () => {
    const token = sts.userToken('gateway', { sub: 'bob', scopes: ['shop'] });
    const first = await call(gateway, '/', { authorization: `Bearer ${token}`, 'baton-request': 'ChosenByCaller00' });
    assert.equal(first.status, 200);
    const a = app.seen.at(-1)?.headers['baton-request'];
    await call(gateway, '/', { authorization: `Bearer ${token}` });
    const b = app.seen.at(-1)?.headers['baton-request'];
    assert.match(String(a), /^[A-Za-z0-9_-]{16}$/);
    assert.notEqual(a, 'ChosenByCaller00');
    assert.notEqual(a, b, 'one id per request, even with the same token');
    // The handle carries the same id, sealed (test/sidecar/outbound.test.ts opens it at the outbound port).
    assert.ok(!String(app.seen.at(-1)?.headers['baton-context']).includes(String(b)));
  });

  it('continues the request id a mesh caller sends, and logs it on the decision line', async () => {
    const token = sts.meshToken('orders', ['gateway'], { sub: 'dave' });
    const r = await call(orders, '/orders', { authorization: `Bearer ${token}`, 'baton-request': 'FromGateway00000' });
    assert.equal(r.status, 200);
    assert.equal(app.seen.at(-1)?.headers['baton-request'], 'FromGateway00000');
    assert.equal(
      orders.logs.lines.filter((l) => l.event === 'decision' && l.subject === 'dave').at(-1)?.request,
      'FromGateway00000',
    );
  });

  it('refuses an external IdP token at a service that is not an entrypoint, naming the rule', async () => {
    const count = app.seen.length;
    const token = sts.userToken('orders');
    const r = await call(orders, '/orders', { authorization: `Bearer ${token}` });
    assert.equal(r.status, 403);
    assert.equal(r.json().code, PolicyDeniedError.code);
    assert.equal(typeof r.json().rule, 'string');
    assert.equal(app.seen.length, count);
  });

  it('refuses a chain the policy does not allow with 403 naming the rule, and logs one audit line', async () => {
    const count = app.seen.length;
    const token = sts.meshToken('orders', ['payments'], { sub: 'carol' });
    const r = await call(orders, '/orders', { authorization: `Bearer ${token}` });
    assert.equal(r.status, 403);
    const body = r.json();
    assert.equal(body.code, PolicyDeniedError.code);
    assert.equal(typeof body.cause, 'string');
    assert.equal(app.seen.length, count);
    const audit = orders.logs.lines.filter((l) => l.event === 'decision' && l.subject === 'carol');
    assert.equal(audit.length, 1);
    assert.equal(audit[0]?.decision, 'deny');
    assert.deepEqual(audit[0]?.chain, ['payments']);
    assert.equal(audit[0]?.rule, body.rule);
    assert.ok(!orders.logs.raw.join('').includes(token));
  });

  it('answers a missing acr with an RFC 9470 step-up challenge', async () => {
    const payments = await startTestSidecar(sts, { service: 'payments', app: app.url });
    try {
      const token = sts.meshToken('payments', ['gateway', 'orders'], { scopes: ['pay'], acr: 'pwd' });
      const r = await call(payments, '/charges', { authorization: `Bearer ${token}` }, 'POST');
      assert.equal(r.status, 401);
      assert.equal(r.json().code, StepUpRequiredError.code);
      assert.match(String(r.headers['www-authenticate']), /error="insufficient_user_authentication"/);
      assert.match(String(r.headers['www-authenticate']), /acr_values="mfa"/);
      const ok = sts.meshToken('payments', ['gateway', 'orders'], { scopes: ['pay'], acr: 'mfa' });
      assert.equal((await call(payments, '/charges', { authorization: `Bearer ${ok}` }, 'POST')).status, 200);
    } finally {
      await payments.close();
    }
  });

  it('lets a shadow-mode denial through and records it as would_deny', async () => {
    const payments = await startTestSidecar(sts, { service: 'payments', app: app.url });
    try {
      const token = sts.meshToken('payments', ['gateway', 'orders'], { sub: 'dave', scopes: [] });
      const r = await call(payments, '/refunds', { authorization: `Bearer ${token}` }, 'POST');
      assert.equal(r.status, 200);
      const audit = payments.logs.lines.find((l) => l.event === 'decision' && l.subject === 'dave');
      assert.equal(audit?.decision, 'would_deny');
    } finally {
      await payments.close();
    }
  });

  it('passes the Authorization header to the app only with inbound.forwardToken', async () => {
    const forwarding = await startTestSidecar(sts, {
      service: 'orders',
      app: app.url,
      config: { 'inbound.forwardToken': true },
    });
    try {
      const token = sts.meshToken('orders', ['gateway']);
      assert.equal((await call(forwarding, '/orders', { authorization: `Bearer ${token}` })).status, 200);
      assert.equal(app.seen.at(-1)?.headers.authorization, `Bearer ${token}`);
    } finally {
      await forwarding.close();
    }
  });

  it('is not ready and answers 503 until it has a policy', async () => {
    const waiting = await startTestSidecar(sts, { service: 'orders', app: app.url, policy: undefined });
    try {
      const token = sts.meshToken('orders', ['gateway']);
      const r = await call(waiting, '/orders', { authorization: `Bearer ${token}` });
      assert.equal(r.status, 503);
      assert.equal(r.json().code, NotReadyError.code);
      assert.equal(r.headers['retry-after'], '1', 'RFC 9110 §10.2.3: a 503 says when to come back');
      const readyz = await request(waiting.url('admin', '/readyz'));
      assert.equal(readyz.statusCode, 503);
      await readyz.body.dump();
      waiting.policy.swap(compile(SHOP));
      assert.equal((await call(waiting, '/orders', { authorization: `Bearer ${token}` })).status, 200);
      const ready = await request(waiting.url('admin', '/readyz'));
      assert.equal(ready.statusCode, 200);
      await ready.body.dump();
    } finally {
      await waiting.close();
    }
  });

  it('answers 504 when the app does not answer in time and 502 when it is down', async () => {
    const slow = await startApp(() => undefined);
    const timing = await startTestSidecar(sts, {
      service: 'orders',
      app: slow.url,
      config: { 'inbound.timeoutMs': 200 },
    });
    const down = await startTestSidecar(sts, { service: 'orders', app: 'http://127.0.0.1:1' });
    try {
      const token = sts.meshToken('orders', ['gateway']);
      const late = await call(timing, '/orders', { authorization: `Bearer ${token}` });
      assert.equal(late.status, 504);
      assert.equal(late.json().code, UpstreamTimeoutError.code);
      const gone = await call(down, '/orders', { authorization: `Bearer ${token}` });
      assert.equal(gone.status, 502);
      assert.equal(gone.json().code, UpstreamUnreachableError.code);
    } finally {
      await timing.close();
      await down.close();
      await slow.close();
    }
  });

  it('answers 503 past inbound.maxConcurrent instead of queueing', async () => {
    const release: Array<() => void> = [];
    const held = await startApp((req, res) => {
      req.resume();
      release.push(() => res.end('done'));
    });
    const bounded = await startTestSidecar(sts, {
      service: 'orders',
      app: held.url,
      config: { 'inbound.maxConcurrent': 2, 'inbound.peerShare': 1, 'inbound.subjectShare': 1 },
    });
    try {
      const token = sts.meshToken('orders', ['gateway']);
      const first = [
        call(bounded, '/orders', { authorization: `Bearer ${token}` }),
        call(bounded, '/orders', { authorization: `Bearer ${token}` }),
      ];
      await waitFor(async () => release.length === 2, {
        what: 'both requests held by the app',
        timeoutMs: 5_000,
        intervalMs: 10,
      });
      const third = await call(bounded, '/orders', { authorization: `Bearer ${token}` });
      assert.equal(third.status, 503);
      assert.equal(third.json().code, OverloadedError.code);
      assert.equal(third.headers['retry-after'], '1');
      for (const r of release) r();
      assert.deepEqual(
        (await Promise.all(first)).map((r) => r.status),
        [200, 200],
      );
    } finally {
      await bounded.close();
      await held.close();
    }
  });

  it('exposes Prometheus metrics without user ids', async () => {
    const response = await request(orders.url('admin', '/metrics'));
    const text = await response.body.text();
    assert.equal(response.statusCode, 200);
    assert.match(text, /baton_requests_total\{direction="inbound",target="orders",code="200",reason="forwarded"\} \d+/);
    assert.match(
      text,
      /baton_requests_total\{direction="inbound",target="orders",code="401",reason="BATON_[A-Z_]+"\} \d+/,
    );
    assert.match(text, /baton_decisions_total\{rule="[^"]+",decision="deny"\} \d+/);
    assert.match(text, /baton_policy_version 1/);
    assert.ok(!text.includes('alice') && !text.includes('carol'));
  });
});
