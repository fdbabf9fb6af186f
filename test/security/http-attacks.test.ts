/**
 * HTTP-level attacks on the running sidecars and the STS: spoofed identity
 * headers, request smuggling through both ports, SSRF and redirects on the
 * outbound port, tokens replayed on another edge or substituted, scope
 * widening and may_act at the STS, and secrets in logs.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { allOutput, type Name, type SecurityMesh, startSecurityMesh } from '../helpers/security-mesh.ts';
import { PolicyDeniedError } from '../../src/policy/language/errors.ts';
import { UnauthenticatedError } from '../../src/sidecar/errors.ts';
import { MayActMismatchError } from '../../src/sts/errors.ts';
import { TokenWrongAudienceError } from '../../src/token/errors.ts';
import { waitFor } from '../helpers/net.ts';

const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

/** Writes raw bytes and returns everything the server answered before closing or going quiet. */
async function raw(port: number, payload: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    const done = (): void => {
      socket.destroy();
      resolve(data);
    };
    const timer = setTimeout(done, 1_500);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('end', () => {
      clearTimeout(timer);
      done();
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      if (data !== '') done();
      else reject(error);
    });
    socket.write(payload);
  });
}

describe('HTTP attacks on the sidecar and the STS', { timeout: 90_000 }, () => {
  let mesh: SecurityMesh;

  before(async () => {
    mesh = await startSecurityMesh();
  });
  after(async () => {
    await mesh?.stop();
  });

  /** A live baton-context handle, as the orders app receives it. */
  async function ordersHandle(): Promise<string> {
    const r = await request(mesh.inbound('orders', '/orders'), {
      headers: { authorization: `Bearer ${mesh.meshToken('orders', ['gateway'])}` },
    });
    await r.body.dump();
    assert.equal(r.statusCode, 200);
    const handle = mesh.apps.orders.seen.at(-1)?.headers['baton-context'];
    assert.equal(typeof handle, 'string');
    return handle as string;
  }

  it('strips spoofed baton-* headers in any case and baton_* headers before the app sees them', async () => {
    const r = await request(mesh.inbound('orders', '/orders'), {
      headers: [
        'authorization',
        `Bearer ${mesh.meshToken('orders', ['gateway'], { sub: 'alice' })}`,
        'Baton-Subject',
        'mallory',
        'BATON-CHAIN',
        'gateway,admin',
        'bAtOn-ScOpE',
        'admin',
        'baton_subject',
        'mallory',
        'Baton_Caller',
        'admin',
        'baton-context',
        'bctx_forged',
        'BATON-TXN',
        'txn-forged',
      ],
    });
    await r.body.dump();
    assert.equal(r.statusCode, 200);
    const seen = mesh.apps.orders.seen.at(-1);
    assert.ok(seen);
    assert.equal(seen.headers['baton-subject'], 'alice');
    assert.equal(seen.headers['baton-chain'], 'gateway');
    assert.equal(seen.headers['baton-scope'], 'shop');
    assert.equal(seen.headers['baton-txn'], 'txn-security');
    assert.notEqual(seen.headers['baton-context'], 'bctx_forged');
    const names = seen.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    assert.equal(names.filter((n) => n.startsWith('baton_')).length, 0);
    for (const name of ['baton-subject', 'baton-chain', 'baton-scope', 'baton-txn', 'baton-context'])
      assert.equal(names.filter((n) => n === name).length, 1, name);
  });

  it('refuses CL+TE and duplicate Content-Length on both ports with 400, and the app sees nothing', async () => {
    const token = mesh.meshToken('orders', ['gateway']);
    const smuggled = 'GET /orders/smuggled HTTP/1.1\r\nHost: orders\r\n\r\n';
    const attempts = [
      `POST /orders HTTP/1.1\r\nHost: orders\r\nAuthorization: Bearer ${token}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
      `POST /orders HTTP/1.1\r\nHost: orders\r\nAuthorization: Bearer ${token}\r\nContent-Length: 0\r\nContent-Length: ${smuggled.length}\r\n\r\n${smuggled}`,
      `POST /orders HTTP/1.1\r\nHost: orders\r\nAuthorization: Bearer ${token}\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n${smuggled}`,
      `POST /orders HTTP/1.1\r\nHost: orders\r\nAuthorization: Bearer ${token}\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${smuggled}`,
      `POST /orders HTTP/1.1\r\nHost: orders\r\nAuthorization: Bearer ${token}\r\nContent-Length : 5\r\n\r\nhello${smuggled}`,
    ];
    const handle = await ordersHandle();
    const before = { orders: mesh.apps.orders.hits, payments: mesh.apps.payments.hits };
    for (const attempt of attempts) {
      const inbound = await raw(mesh.ports.orders.inbound, attempt);
      assert.match(inbound, /^HTTP\/1\.1 400 /, `inbound accepted: ${attempt.split('\r\n').slice(3, 5).join(' | ')}`);
      const outbound = await raw(
        mesh.ports.orders.outbound,
        attempt
          .replace('POST /orders', 'POST /charges')
          .replace('Host: orders', `Host: payments\r\nbaton-context: ${handle}`),
      );
      assert.match(outbound, /^HTTP\/1\.1 400 /, `outbound accepted: ${attempt.split('\r\n').slice(3, 5).join(' | ')}`);
    }
    assert.equal(mesh.apps.orders.hits, before.orders);
    assert.equal(mesh.apps.payments.hits, before.payments);
  });

  it('refuses outbound calls to hosts the policy does not name (SSRF) and never contacts them', async () => {
    const handle = await ordersHandle();
    const targets = [
      { url: `http://127.0.0.1:${mesh.trap.port}/latest/meta-data`, status: 400 },
      { url: 'http://169.254.169.254/latest/meta-data', status: 400 },
      { url: 'http://metadata/computeMetadata/v1', status: 403 },
      { url: 'http://evil/x', status: 403 },
      { url: `http://payments@127.0.0.1:${mesh.trap.port}/`, status: 400 },
    ];
    for (const target of targets) {
      const r = await rawProxy(mesh.ports.orders.outbound, target.url, handle);
      assert.equal(r.status, target.status, target.url);
    }
    const hostHeader = await request(mesh.outbound('orders', '/charges'), {
      method: 'POST',
      headers: { host: `127.0.0.1:${mesh.trap.port}`, 'baton-context': handle },
    });
    await hostHeader.body.dump();
    assert.equal(hostHeader.statusCode, 400);
    assert.equal(mesh.trap.hits, 0);
  });

  it('returns an upstream redirect to the app instead of following it to a new host', async () => {
    const handle = await ordersHandle();
    const r = await request(mesh.outbound('orders', '/redirect'), {
      method: 'GET',
      headers: { host: 'payments', 'baton-context': handle },
    });
    await r.body.dump();
    assert.equal(r.statusCode, 302);
    assert.match(String(r.headers.location), /\/stolen$/);
    assert.equal(mesh.trap.hits, 0);
  });

  it('refuses a token obtained for one edge when replayed on another', async () => {
    const userToken = mesh.userToken();
    const exchanged = await mesh.exchange('gateway', {
      grant_type: TOKEN_EXCHANGE,
      subject_token: userToken,
      subject_token_type: ACCESS_TOKEN,
      audience: 'orders',
    });
    assert.equal(exchanged.status, 200);
    const forOrders = exchanged.body.access_token as string;
    const at = async (name: Name, path: string, method = 'GET') => {
      const before = mesh.apps[name].hits;
      const r = await request(mesh.inbound(name, path), {
        method: method as 'GET',
        headers: { authorization: `Bearer ${forOrders}` },
      });
      const body = (await r.body.json()) as { code?: string };
      return { status: r.statusCode, code: body.code, reached: mesh.apps[name].hits > before };
    };
    assert.equal((await at('orders', '/orders')).status, 200);
    const atPayments = await at('payments', '/charges', 'POST');
    assert.equal(atPayments.status, 401);
    assert.equal(atPayments.code, TokenWrongAudienceError.code);
    assert.equal(atPayments.reached, false);
    const atGateway = await at('gateway', '/');
    assert.equal(atGateway.status, 401);
    assert.equal(atGateway.reached, false);
    // The same edge, a method the edge does not allow.
    const wrongMethod = await at('orders', '/orders', 'DELETE');
    assert.equal(wrongMethod.status, 403);
    assert.equal(wrongMethod.code, PolicyDeniedError.code);
  });

  it('refuses at the STS a subject token substituted from another audience, whoever presents it', async () => {
    // A genuine STS token for payments (chain gateway → orders), presented by gateway to extend "its" chain.
    const forPayments = mesh.meshToken('payments', ['gateway', 'orders']);
    for (const client of ['gateway', 'payments'] as const) {
      const r = await mesh.exchange(client, {
        grant_type: TOKEN_EXCHANGE,
        subject_token: forPayments,
        subject_token_type: ACCESS_TOKEN,
        audience: 'orders',
      });
      assert.ok(r.status === 400, `${client}: ${r.status}`);
      assert.match(String(r.body.error), /^(invalid_request|invalid_target|unauthorized_client)$/);
      assert.equal(r.body.access_token, undefined);
    }
  });

  it('refuses scope widening and a may_act naming another party at the STS', async () => {
    const widened = await mesh.exchange('gateway', {
      grant_type: TOKEN_EXCHANGE,
      subject_token: mesh.userToken(),
      subject_token_type: ACCESS_TOKEN,
      audience: 'orders',
      scope: 'shop admin',
    });
    assert.equal(widened.status, 400);
    assert.equal(widened.body.error, 'invalid_scope');
    const mayAct = await mesh.exchange('gateway', {
      grant_type: TOKEN_EXCHANGE,
      subject_token: mesh.userToken({ may_act: { sub: 'payments' } }),
      subject_token_type: ACCESS_TOKEN,
      audience: 'orders',
    });
    assert.equal(mayAct.status, 400);
    assert.equal(mayAct.body.error, 'invalid_request');
    assert.equal(mayAct.body.code, MayActMismatchError.code);
    // The granted scope never exceeds the subject token's even when the edge names more.
    const narrow = await mesh.exchange('gateway', {
      grant_type: TOKEN_EXCHANGE,
      subject_token: mesh.userToken({ scope: 'other' }),
      subject_token_type: ACCESS_TOKEN,
      audience: 'orders',
    });
    if (narrow.status === 200) assert.doesNotMatch(String(narrow.body.scope), /shop/);
    // An edge the policy forbids is refused before minting.
    const forbidden = await mesh.exchange('gateway', {
      grant_type: TOKEN_EXCHANGE,
      subject_token: mesh.userToken(),
      subject_token_type: ACCESS_TOKEN,
      audience: 'payments',
    });
    assert.equal(forbidden.status, 400);
    assert.match(String(forbidden.body.error), /^(invalid_target|unauthorized_client)$/);
  });

  it('accepts a baton-context handle only on the loopback outbound port, never as a credential inbound', async () => {
    const handle = await ordersHandle();
    const before = mesh.apps.orders.hits;
    const r = await request(mesh.inbound('orders', '/orders'), { headers: { 'baton-context': handle } });
    const body = (await r.body.json()) as { code?: string };
    assert.equal(r.statusCode, 401);
    assert.equal(body.code, UnauthenticatedError.code);
    assert.equal(mesh.apps.orders.hits, before);
    const forged = await request(mesh.outbound('orders', '/charges'), {
      method: 'POST',
      headers: { host: 'payments', 'baton-context': `${handle}x` },
    });
    await forged.body.dump();
    assert.equal(forged.statusCode, 401);
  });

  it('keeps query strings with tokens and context handles out of every log line', async () => {
    const handle = await ordersHandle();
    const secret = 'SeCrEtQuErYtOkEn0123456789';
    for (const path of [`/orders?access_token=${secret}`, `/forbidden?access_token=${secret}`]) {
      const r = await request(mesh.inbound('orders', path), {
        headers: { authorization: `Bearer ${mesh.meshToken('orders', ['gateway'])}` },
      });
      await r.body.dump();
    }
    const denied = await request(mesh.outbound('orders', `/refunds?access_token=${secret}`), {
      method: 'POST',
      headers: { host: 'payments', 'baton-context': handle },
    });
    await denied.body.dump();
    assert.equal(denied.statusCode, 403);
    // The outbound refusal is the last line written: once it is in the output, all of them are.
    const output = await waitFor(
      async () => {
        const text = allOutput(mesh);
        return /"event":"decision"[^\n]*"path":"\/refunds"/.test(text) ? text : undefined;
      },
      { what: 'the decision line of the refused /refunds call', timeoutMs: 5_000 },
    );
    assert.ok(!output.includes(secret), 'a query string reached a log line');
    assert.ok(!output.includes(handle), 'a context handle reached a log line');
    assert.doesNotMatch(output, /eyJ[A-Za-z0-9_-]{10,}\.eyJ/);
  });
});

/** An absolute-form (proxy) request on a raw socket: undici cannot send one to a non-proxy. */
async function rawProxy(port: number, url: string, handle: string): Promise<{ status: number }> {
  const answer = await raw(
    port,
    `GET ${url} HTTP/1.1\r\nHost: ${new URL(url).host}\r\nbaton-context: ${handle}\r\nConnection: close\r\n\r\n`,
  );
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0) };
}
