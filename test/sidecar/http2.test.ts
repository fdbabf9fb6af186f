/**
 * HTTP/2 on both data-plane ports (#27), in process with the stand-in STS:
 * h2c with prior knowledge on the same ports as HTTP/1.1, a request keeping
 * its protocol on every hop, trailers passed on, and refusals to a gRPC
 * caller as gRPC statuses (HTTP 200, `grpc-status`), never a problem
 * document. The real gRPC pair over mTLS is test/e2e/grpc.test.ts.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type Http2Server, type IncomingHttpHeaders } from 'node:http2';
import type { Server as NetServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { listenOnLoopback } from '../helpers/net.ts';
import { FakeSts, startTestSidecar, type TestSidecar } from '../helpers/sidecar.ts';

interface H2Answer {
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly trailers: IncomingHttpHeaders | undefined;
}

function h2Request(port: number, headers: Record<string, string>, body?: string): Promise<H2Answer> {
  return new Promise((resolve, reject) => {
    const session = connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request(headers, { endStream: body === undefined });
    let answer: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders | undefined;
    let text = '';
    stream.on('response', (h) => (answer = h));
    stream.on('trailers', (t) => (trailers = t));
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => (text += chunk));
    stream.on('error', reject);
    stream.on('end', () => {
      session.close();
      resolve({ headers: answer, body: text, trailers });
    });
    if (body !== undefined) stream.end(body);
  });
}

describe('HTTP/2 through the sidecar', () => {
  const sts = new FakeSts();
  let app: Http2Server;
  let appPort: number;
  let orders: TestSidecar;
  const seen: IncomingHttpHeaders[] = [];

  before(async () => {
    app = createServer();
    app.on('stream', (stream, headers) => {
      seen.push(headers);
      // The app resets the stream before reading any of the body.
      if (headers['x-test-reset'] !== undefined) return void stream.close(0x8);
      let body = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => (body += chunk));
      stream.on('end', () => {
        if (headers[':path'] === '/slow')
          return void setTimeout(
            () => stream.destroyed || stream.respond({ ':status': 200 }, { endStream: true }),
            2_000,
          );
        const grpc = String(headers['content-type']).startsWith('application/grpc');
        stream.respond(
          { ':status': 200, 'content-type': grpc ? 'application/grpc' : 'text/plain', 'x-app': 'h2' },
          { waitForTrailers: grpc },
        );
        if (grpc) stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'ok' }));
        stream.end(`you sent ${body.length} bytes to ${String(headers[':path'])}`);
      });
    });
    appPort = await listenOnLoopback(app as unknown as NetServer);
    orders = await startTestSidecar(sts, { service: 'orders', app: `http://127.0.0.1:${appPort}` });
  });
  after(async () => {
    await orders.close();
    app.close();
  });

  it('takes h2c with prior knowledge on the inbound port and forwards it to the app over h2c, identity headers added', async () => {
    const token = sts.meshToken('orders', ['gateway'], { sub: 'alice' });
    const answer = await h2Request(
      orders.ports.inbound,
      { ':method': 'POST', ':path': '/orders', authorization: `Bearer ${token}`, 'baton-subject': 'mallory' },
      'hello',
    );
    assert.equal(answer.headers[':status'], 200);
    assert.equal(answer.headers['x-app'], 'h2');
    assert.equal(answer.body, 'you sent 5 bytes to /orders');
    const headers = seen.at(-1);
    assert.equal(headers?.['baton-subject'], 'alice');
    assert.equal(headers?.['baton-caller'], 'gateway');
    assert.equal(headers?.authorization, undefined);
    assert.equal(headers?.[':authority'], `127.0.0.1:${orders.ports.inbound}`);
  });

  it('still speaks HTTP/1.1 on the same port', async () => {
    const token = sts.meshToken('orders', ['gateway'], { sub: 'alice' });
    // The app speaks h2c only: an HTTP/1.1 request keeps its protocol and the app refuses it (502), which shows the hop kept it.
    const answer = await request(orders.url('inbound', '/orders'), { headers: { authorization: `Bearer ${token}` } });
    await answer.body.dump();
    assert.equal(answer.statusCode, 502);
  });

  it("passes a gRPC answer's trailers on", async () => {
    const token = sts.meshToken('orders', ['gateway'], { sub: 'alice' });
    const answer = await h2Request(
      orders.ports.inbound,
      {
        ':method': 'POST',
        ':path': '/orders',
        'content-type': 'application/grpc',
        te: 'trailers',
        authorization: `Bearer ${token}`,
      },
      '\u0000\u0000\u0000\u0000\u0000',
    );
    assert.equal(answer.headers[':status'], 200);
    assert.equal(answer.trailers?.['grpc-status'], '0');
    assert.equal(answer.trailers?.['grpc-message'], 'ok');
    assert.equal(seen.at(-1)?.te, 'trailers');
  });

  it('refuses a gRPC call with a gRPC status, never a problem document: UNAUTHENTICATED, PERMISSION_DENIED', async () => {
    const none = await h2Request(
      orders.ports.inbound,
      { ':method': 'POST', ':path': '/orders', 'content-type': 'application/grpc', te: 'trailers' },
      '',
    );
    assert.equal(none.headers[':status'], 200);
    assert.equal(none.headers['grpc-status'], '16');
    assert.match(String(none.headers['grpc-message']), /^BATON_UNAUTHENTICATED: /);
    assert.equal(none.body, '');
    const token = sts.meshToken('orders', ['payments'], { sub: 'alice' });
    const denied = await h2Request(
      orders.ports.inbound,
      {
        ':method': 'POST',
        ':path': '/orders',
        'content-type': 'application/grpc',
        te: 'trailers',
        authorization: `Bearer ${token}`,
      },
      '',
    );
    assert.equal(denied.headers['grpc-status'], '7');
    assert.match(String(denied.headers['grpc-message']), /^BATON_POLICY_DENIED: /);
  });

  it("reads and drops the rest of a body the app reset mid-upload, so the caller's session keeps carrying its other streams", async () => {
    const token = sts.meshToken('orders', ['gateway'], { sub: 'alice' });
    const session = connect(`http://127.0.0.1:${orders.ports.inbound}`);
    session.on('error', () => {});
    const send = (body: string | Buffer, reset = false): Promise<{ status: number; text: string }> =>
      new Promise((resolve, reject) => {
        const stream = session.request({
          ':method': 'POST',
          ':path': '/orders',
          authorization: `Bearer ${token}`,
          ...(reset ? { 'x-test-reset': '1' } : {}),
        });
        let status = 0;
        let text = '';
        stream.on('response', (h) => (status = Number(h[':status'])));
        stream.setEncoding('utf8');
        stream.on('data', (chunk: string) => (text += chunk));
        stream.on('error', reject);
        stream.on('end', () => resolve({ status, text }));
        stream.end(body);
      });
    try {
      // More than the default 64 KiB windows, stream and session: had the rest been left unread, the session would stall.
      const refused = await send(Buffer.alloc(300_000, 'x'), true);
      assert.equal(refused.status, 502);
      for (let i = 0; i < 3; i++)
        assert.deepEqual(await send('hello'), { status: 200, text: 'you sent 5 bytes to /orders' });
    } finally {
      session.close();
    }
  });

  it('holds a gRPC call to its grpc-timeout: the sidecar itself answers DEADLINE_EXCEEDED when the app is slower', async () => {
    const token = sts.meshToken('orders', ['gateway'], { sub: 'alice' });
    const started = Date.now();
    const answer = await h2Request(
      orders.ports.inbound,
      {
        ':method': 'POST',
        ':path': '/slow',
        'content-type': 'application/grpc',
        te: 'trailers',
        'grpc-timeout': '200m',
        authorization: `Bearer ${token}`,
      },
      '',
    );
    assert.equal(answer.headers['grpc-status'], '4');
    assert.match(String(answer.headers['grpc-message']), /^BATON_UPSTREAM_TIMEOUT: /);
    assert.ok(Date.now() - started < 1_500, `answered after ${Date.now() - started} ms`);
  });

  it('refuses a plain HTTP/2 request with a problem document', async () => {
    const none = await h2Request(orders.ports.inbound, { ':method': 'GET', ':path': '/orders' });
    assert.equal(none.headers[':status'], 401);
    assert.equal(none.headers['content-type'], 'application/problem+json');
    assert.equal(JSON.parse(none.body).code, 'BATON_UNAUTHENTICATED');
  });
});
