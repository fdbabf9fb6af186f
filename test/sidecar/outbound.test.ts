import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { fetch as undiciFetch, ProxyAgent, request } from 'undici';
import { FakeSts, startApp, startTestSidecar, type TestApp, type TestSidecar } from '../helpers/sidecar.ts';
import { MethodNotAllowedError } from '../../src/core/errors.ts';
import { PolicyDeniedError } from '../../src/policy/language/errors.ts';
import { UnauthenticatedError, UnknownServiceError } from '../../src/sidecar/errors.ts';
import { StsUnavailableError } from '../../src/sidecar/exchange/errors.ts';

describe('sidecar outbound', () => {
  const sts = new FakeSts();
  let upstream: TestApp;
  let orders: TestSidecar;
  let handle: string;
  let inboundRequest: string;

  before(async () => {
    upstream = await startApp((req, res) => {
      req.resume();
      if (req.url === '/redirect') {
        res.writeHead(302, { location: 'http://elsewhere/' });
        res.end();
        return;
      }
      res.writeHead(201, { 'content-type': 'text/plain', 'x-upstream': 'yes' });
      res.end('charged');
    });
    // orders' own app is irrelevant here; the inbound call below only mints a context handle.
    const app = await startApp();
    orders = await startTestSidecar(sts, {
      service: 'orders',
      app: app.url,
      upstreams: { payments: upstream.url, billing: upstream.url },
    });
    const token = sts.meshToken('orders', ['gateway'], { sub: 'alice', scopes: ['pay'], acr: 'mfa' });
    await (
      await request(orders.url('inbound', '/orders'), { headers: { authorization: `Bearer ${token}` } })
    ).body.dump();
    handle = String(app.seen.at(-1)?.headers['baton-context']);
    inboundRequest = String(app.seen.at(-1)?.headers['baton-request']);
    after(() => app.close());
  });
  after(async () => {
    await orders.close();
    await upstream.close();
  });

  async function call(options: {
    path?: string;
    method?: string;
    headers?: Record<string, string>;
    absolute?: string;
  }) {
    const headers = { host: 'payments', ...options.headers };
    const response =
      options.absolute === undefined
        ? await request(orders.url('outbound', options.path ?? '/charges'), {
            method: (options.method ?? 'POST') as 'POST',
            headers,
          })
        : await rawRequest(
            orders.ports.outbound,
            `${options.method ?? 'POST'} ${options.absolute} HTTP/1.1\r\nHost: ignored\r\n${Object.entries(
              options.headers ?? {},
            )
              .map(([k, v]) => `${k}: ${v}\r\n`)
              .join('')}Content-Length: 0\r\nConnection: close\r\n\r\n`,
          );
    if ('body' in response) {
      const text = await response.body.text();
      return { status: response.statusCode, headers: response.headers, text };
    }
    return response;
  }

  it('exchanges the context handle for a token to the target and forwards origin-form requests with Host: <service>', async () => {
    const exchanges = sts.exchanges;
    const r = await call({ headers: { 'baton-context': handle, 'Baton-Subject': 'mallory' } });
    assert.equal(r.status, 201);
    assert.equal(r.text, 'charged');
    assert.equal(r.headers['x-upstream'], 'yes');
    const seen = upstream.seen.at(-1);
    const token = String(seen?.headers.authorization).replace(/^Bearer /, '');
    const claims = sts.tokens.get(token);
    assert.equal(claims?.audience, 'payments');
    assert.deepEqual(claims?.chain, ['gateway', 'orders']);
    assert.equal(claims?.subject, 'alice');
    assert.equal(seen?.headers['baton-context'], undefined);
    assert.equal(seen?.headers['baton-subject'], undefined);
    assert.equal(sts.exchanges, exchanges + 1);
  });

  it('accepts absolute-form requests, as HTTP_PROXY clients send them', async () => {
    const r = await call({ absolute: 'http://payments/charges', headers: { 'baton-context': handle } });
    assert.equal(r.status, 201);
    assert.equal(upstream.seen.at(-1)?.url, '/charges');
  });

  it('refuses a forbidden edge before any exchange, naming the rule', async () => {
    const exchanges = sts.exchanges;
    const r = await call({ path: '/charges', method: 'GET', headers: { 'baton-context': handle } });
    assert.equal(r.status, 403);
    assert.equal(JSON.parse(r.text).code, PolicyDeniedError.code);
    assert.equal(JSON.parse(r.text).cause, 'method');
    assert.equal(sts.exchanges, exchanges);
  });

  it('refuses a service the policy does not name before any exchange', async () => {
    const exchanges = sts.exchanges;
    const r = await call({ headers: { host: 'evil', 'baton-context': handle } });
    assert.equal(r.status, 403);
    assert.equal(JSON.parse(r.text).code, UnknownServiceError.code);
    assert.equal(sts.exchanges, exchanges);
  });

  it('carries the request id sealed in the handle: to the next hop as baton-request, and in its audit line', async () => {
    assert.match(inboundRequest, /^[A-Za-z0-9_-]{16}$/);
    assert.ok(!handle.includes(inboundRequest), 'the request id is sealed, not in the clear');
    const r = await call({ headers: { 'baton-context': handle, 'baton-request': 'AppChosenId00000' } });
    assert.equal(r.status, 201);
    assert.equal(upstream.seen.at(-1)?.headers['baton-request'], inboundRequest, "the sidecar's id, not the app's");
    const line = orders.logs.lines.filter((l) => l.event === 'decision' && l.direction === 'outbound').at(-1);
    assert.equal(line?.request, inboundRequest);
  });

  it('refuses a handle altered in any byte, or cut short, as it refuses an unknown handle', async () => {
    const sealed = Buffer.from(handle.slice('bctx_'.length), 'base64url');
    for (const at of [0, 12, 13, 20, sealed.length - 17, sealed.length - 1]) {
      const altered = Buffer.from(sealed);
      altered[at] = (altered[at] as number) ^ 0x01;
      const r = await call({ headers: { 'baton-context': `bctx_${altered.toString('base64url')}` } });
      assert.equal(r.status, 401, `byte ${at} flipped`);
      assert.equal(JSON.parse(r.text).code, UnauthenticatedError.code);
    }
    assert.equal((await call({ headers: { 'baton-context': handle.slice(0, -4) } })).status, 401);
    assert.equal((await call({ headers: { 'baton-context': `${handle}.AAAAAAAAAAAAAAAA` } })).status, 401);
  });

  it('refuses an unknown context handle with 401', async () => {
    const r = await call({ headers: { 'baton-context': 'bctx_forged' } });
    assert.equal(r.status, 401);
    assert.equal(JSON.parse(r.text).code, UnauthenticatedError.code);
  });

  it('exchanges a bearer token the app forwarded when it was addressed to this service', async () => {
    const token = sts.meshToken('orders', ['gateway'], { scopes: ['pay'], acr: 'mfa' });
    assert.equal((await call({ headers: { authorization: `Bearer ${token}` } })).status, 201);
    const sent = String(upstream.seen.at(-1)?.headers.authorization);
    assert.notEqual(sent, `Bearer ${token}`);
    const wrongAudience = sts.meshToken('payments', ['gateway', 'orders']);
    assert.equal((await call({ headers: { authorization: `Bearer ${wrongAudience}` } })).status, 401);
  });

  it('makes a service-identity call only where the policy allows one without a user', async () => {
    const app = await startApp();
    const billing = await startTestSidecar(sts, {
      service: 'billing',
      app: app.url,
      upstreams: { orders: upstream.url },
    });
    try {
      const services = sts.serviceTokens;
      const refused = await request(billing.url('outbound', '/orders'), {
        method: 'POST',
        headers: { host: 'orders' },
      });
      assert.equal(refused.statusCode, 403);
      assert.equal(((await refused.body.json()) as { code: string }).code, PolicyDeniedError.code);
      assert.equal(sts.serviceTokens, services);
      const allowed = await request(billing.url('outbound', '/orders/7'), { headers: { host: 'orders' } });
      assert.equal(allowed.statusCode, 201);
      await allowed.body.dump();
      assert.equal(sts.serviceTokens, services + 1);
      const claims = sts.tokens.get(String(upstream.seen.at(-1)?.headers.authorization).replace(/^Bearer /, ''));
      assert.equal(claims?.user, false);
      assert.deepEqual(claims?.chain, ['billing']);
    } finally {
      await billing.close();
      await app.close();
    }
  });

  it('answers a step-up challenge to the app when the subject lacks the acr', async () => {
    const token = sts.meshToken('orders', ['gateway'], { scopes: ['pay'], acr: 'pwd' });
    const r = await call({ headers: { authorization: `Bearer ${token}` } });
    assert.equal(r.status, 401);
    assert.match(String(r.headers['www-authenticate']), /insufficient_user_authentication.*acr_values="mfa"/);
  });

  it('returns an upstream redirect as-is instead of following it', async () => {
    const offEdge = await call({ path: '/redirect', headers: { 'baton-context': handle, host: 'payments' } });
    // /redirect is not on the charge edge: refused before the upstream is asked.
    assert.equal(offEdge.status, 403);
    const token = sts.userToken('gateway');
    const app = await startApp();
    const gateway = await startTestSidecar(sts, {
      service: 'gateway',
      app: app.url,
      upstreams: { orders: upstream.url },
    });
    try {
      await (await request(gateway.url('inbound', '/'), { headers: { authorization: `Bearer ${token}` } })).body.dump();
      const gatewayHandle = String(app.seen.at(-1)?.headers['baton-context']);
      const r = await request(gateway.url('outbound', '/redirect'), {
        headers: { host: 'orders', 'baton-context': gatewayHandle },
      });
      assert.equal(r.statusCode, 302);
      assert.equal(r.headers.location, 'http://elsewhere/');
      await r.body.dump();
    } finally {
      await gateway.close();
      await app.close();
    }
  });

  it('refuses CONNECT to port 443 and https:// targets, which it cannot see into', async () => {
    const tunnel = await rawRequest(
      orders.ports.outbound,
      'CONNECT payments:443 HTTP/1.1\r\nHost: payments:443\r\n\r\n',
    );
    assert.equal(tunnel.status, 405);
    assert.equal(JSON.parse(tunnel.text).code, MethodNotAllowedError.code);
    const https = await call({ absolute: 'https://payments/charges' });
    assert.equal(https.status, 400);
  });

  describe('CONNECT tunnels (undici ProxyAgent, Node fetch with NODE_USE_ENV_PROXY=1)', () => {
    it('opens a tunnel to a service the policy names and checks and exchanges every request in it', async () => {
      const agent = new ProxyAgent(`http://127.0.0.1:${orders.ports.outbound}`);
      try {
        const first = await undiciFetch('http://payments:7070/charges', {
          method: 'POST',
          headers: { 'baton-context': handle },
          dispatcher: agent,
        });
        assert.equal(first.status, 201);
        assert.equal(await first.text(), 'charged');
        const seen = upstream.seen.at(-1);
        assert.equal(sts.tokens.get(String(seen?.headers.authorization).replace(/^Bearer /, ''))?.audience, 'payments');
        assert.equal(seen?.headers['baton-context'], undefined);
        // The same tunnel, a request the policy refuses: refused like any other, before any exchange; the tunnel stays up.
        const exchanges = sts.exchanges;
        const denied = await undiciFetch('http://payments:7070/charges', {
          method: 'GET',
          headers: { 'baton-context': handle },
          dispatcher: agent,
        });
        assert.equal(denied.status, 403);
        assert.equal(((await denied.json()) as { code: string }).code, PolicyDeniedError.code);
        assert.equal(sts.exchanges, exchanges);
      } finally {
        await agent.close();
      }
    });

    it('refuses a CONNECT to a service the policy does not name, and one to a non-service host', async () => {
      const unknown = await rawRequest(
        orders.ports.outbound,
        'CONNECT ledger:7070 HTTP/1.1\r\nHost: ledger:7070\r\n\r\n',
      );
      assert.equal(unknown.status, 403);
      assert.equal(JSON.parse(unknown.text).code, UnknownServiceError.code);
      const ip = await rawRequest(
        orders.ports.outbound,
        'CONNECT 169.254.169.254:80 HTTP/1.1\r\nHost: 169.254.169.254:80\r\n\r\n',
      );
      assert.equal(ip.status, 400);
    });

    it("refuses a request inside a tunnel for another service than the tunnel's, and a CONNECT inside a tunnel", async () => {
      const answers = await rawExchange(orders.ports.outbound, [
        'CONNECT payments:7070 HTTP/1.1\r\nHost: payments:7070\r\n\r\n',
        `POST /charges HTTP/1.1\r\nHost: billing:7070\r\nbaton-context: ${handle}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
      ]);
      assert.match(answers, /^HTTP\/1\.1 200 Connection Established\r\n\r\nHTTP\/1\.1 400 /);
      const nested = await rawExchange(orders.ports.outbound, [
        'CONNECT payments:7070 HTTP/1.1\r\nHost: payments:7070\r\n\r\n',
        'CONNECT payments:7070 HTTP/1.1\r\nHost: payments:7070\r\n\r\n',
      ]);
      assert.match(nested, /^HTTP\/1\.1 200 Connection Established\r\n\r\nHTTP\/1\.1 405 /);
    });

    it('refuses TLS inside a tunnel: the first bytes must read as HTTP/1.1', async () => {
      const tls = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x2a, 0x01, 0x00, 0x00, 0x26, 0x03, 0x03]);
      const answers = await rawExchange(orders.ports.outbound, [
        'CONNECT payments:7070 HTTP/1.1\r\nHost: payments:7070\r\n\r\n',
        tls,
      ]);
      assert.match(answers, /^HTTP\/1\.1 200 Connection Established\r\n\r\nHTTP\/1\.1 400 /);
    });
  });

  it('answers 503 when the STS token endpoint is not known yet', async () => {
    orders.exchangerAvailable = false;
    try {
      const r = await call({ headers: { 'baton-context': handle } });
      assert.equal(r.status, 503);
      assert.equal(JSON.parse(r.text).code, StsUnavailableError.code);
    } finally {
      orders.exchangerAvailable = true;
    }
  });
});

/** One raw HTTP/1.1 exchange, for request forms undici will not send (absolute-form, CONNECT). */
async function rawRequest(
  port: number,
  text: string,
): Promise<{ status: number; headers: Record<string, string>; text: string }> {
  return await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('error', reject);
    socket.on('end', () => {
      const [head = '', ...body] = data.split('\r\n\r\n');
      const [statusLine = '', ...lines] = head.split('\r\n');
      const headers = Object.fromEntries(
        lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]),
      );
      let payload = body.join('\r\n\r\n');
      if (headers['transfer-encoding'] === 'chunked')
        payload = payload
          .split('\r\n')
          .filter((_, i) => i % 2 === 1)
          .join('');
      resolve({ status: Number(statusLine.split(' ')[1]), headers, text: payload });
    });
    socket.write(text);
  });
}

/** Writes each piece in turn on one connection (after the previous answer began) and returns everything read until the connection closes. */
async function rawExchange(port: number, pieces: ReadonlyArray<string | Buffer>): Promise<string> {
  return await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    let next = 0;
    const timer = setTimeout(() => socket.destroy(), 5_000);
    socket.setEncoding('latin1');
    const send = (): void => {
      const piece = pieces[next++];
      if (piece !== undefined) socket.write(piece);
    };
    socket.on('connect', send);
    socket.on('data', (chunk: string) => {
      data += chunk;
      if (data.includes('\r\n\r\n') && next < pieces.length) send();
    });
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(data);
    });
  });
}
