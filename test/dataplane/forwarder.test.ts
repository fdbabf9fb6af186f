/**
 * The socket data plane end to end: a tiny proxy built from createHttp1Server
 * (src/dataplane/server.ts) and createUpstreams (src/dataplane/upstream.ts)
 * in front of real node:http servers on loopback, driven by raw node:net
 * clients where the bytes on the wire are the behaviour under test.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type RequestListener, type ServerOptions } from 'node:http';
import { connect, createServer as createNetServer, type Server, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, it } from 'node:test';
import type { Exchange } from '../../src/dataplane/exchange.ts';
import { connectionTokens, HOP_BY_HOP } from '../../src/dataplane/hop-by-hop.ts';
import { type ConnectionRefusal, createHttp1Server } from '../../src/dataplane/server.ts';
import { createUpstreams, UPSTREAM_MALFORMED, UPSTREAM_TIMEOUT, type UpstreamFailure } from '../../src/dataplane/upstream.ts';
import { listenOnLoopback } from '../helpers/net.ts';

const BOUNDED = { timeout: 30_000 };
const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

interface Served {
  readonly port: number;
  readonly sockets: Set<Socket>;
  connections(): number;
}

/** Listens on a loopback port 0, counts accepted connections, and closes all of it after the test. */
async function serve(server: Server): Promise<Served> {
  const sockets = new Set<Socket>();
  let count = 0;
  server.on('connection', (socket: Socket) => {
    count++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  const port = await listenOnLoopback(server);
  cleanups.push(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return { port, sockets, connections: () => count };
}

const httpUpstream = (listener: RequestListener, options: ServerOptions = {}): Promise<Served> => serve(createHttpServer(options, listener));
const rawUpstream = (onConnection: (socket: Socket) => void): Promise<Served> => serve(createNetServer(onConnection));

/** What the sidecar's forwarder does to a request head: drop hop-by-hop fields, those Connection names, and Expect. */
function requestHeaders(raw: readonly string[]): string[] {
  const named = connectionTokens(raw);
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    if (HOP_BY_HOP.has(name) || named?.has(name) || name === 'expect') continue;
    out.push(raw[i] as string, raw[i + 1] as string);
  }
  return out;
}

type Forward = (x: Exchange) => Promise<number | string>;
interface ProxyOptions {
  readonly timeoutMs?: number;
  readonly maxHeadBytes?: number;
  readonly keepAliveTimeoutMs?: number;
  readonly headersTimeoutMs?: number;
  /** Replaces the plain forward: delay it, refuse instead, look at the exchange first. */
  readonly handle?: (x: Exchange, forward: Forward) => Promise<number | string>;
}
interface Proxy {
  readonly port: number;
  readonly refusals: ConnectionRefusal[];
  readonly exchanges: Exchange[];
  /** Per request: the forward's status, or the UpstreamFailure code it rejected with. */
  readonly outcomes: Array<Promise<number | string>>;
  draining: boolean;
}

async function proxyTo(upstreamPort: number, options: ProxyOptions = {}): Promise<Proxy> {
  const upstreams = createUpstreams({ connectTimeoutMs: 2_000, keepAliveTimeoutMs: 10_000, maxHeadBytes: 16_384 });
  const origin = { key: `127.0.0.1:${upstreamPort}`, host: '127.0.0.1', port: upstreamPort, authority: `127.0.0.1:${upstreamPort}` };
  const forward: Forward = (x) =>
    upstreams.forward(x, { origin, path: x.url, headers: requestHeaders(x.rawHeaders), setHost: false, timeoutMs: options.timeoutMs ?? 5_000 }).catch((error: UpstreamFailure) => {
      x.respond(error.code === UPSTREAM_TIMEOUT ? 504 : 502, ['content-type', 'text/plain'], error.code);
      return error.code;
    });
  const proxy = { port: 0, refusals: [] as ConnectionRefusal[], exchanges: [] as Exchange[], outcomes: [] as Array<Promise<number | string>>, draining: false };
  const plane = createHttp1Server(
    (x) => {
      proxy.exchanges.push(x);
      proxy.outcomes.push(options.handle === undefined ? forward(x) : options.handle(x, forward));
    },
    {
      maxHeadBytes: options.maxHeadBytes ?? 8_192,
      keepAliveTimeoutMs: options.keepAliveTimeoutMs ?? 5_000,
      headersTimeoutMs: options.headersTimeoutMs ?? 5_000,
      draining: () => proxy.draining,
      refuse: (socket, refusal) => {
        proxy.refusals.push(refusal);
        socket.end(`HTTP/1.1 ${refusal.status} Refused\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      },
    },
  );
  proxy.port = (await serve(plane.server)).port;
  cleanups.push(() => {
    plane.closeAll();
    upstreams.close();
  });
  return proxy;
}

/** A promise that must settle within `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`expected ${what} within ${ms} ms`)), ms)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

interface RawClient {
  readonly socket: Socket;
  readonly closed: boolean;
  bytes(): Buffer;
  /** Resolves once `done(bytes so far)` holds; rejects when the connection closes first or after `ms`. */
  until(done: (bytes: Buffer) => boolean, what: string, ms?: number): Promise<Buffer>;
  whenClosed(ms?: number): Promise<Buffer>;
}

async function rawClient(port: number): Promise<RawClient> {
  const socket = connect(port, '127.0.0.1');
  cleanups.push(() => socket.destroy());
  socket.on('error', () => {});
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  const waiters = new Set<() => void>();
  let closed = false;
  const poke = (): void => {
    for (const waiter of [...waiters]) waiter();
  };
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    poke();
  });
  socket.on('close', () => {
    closed = true;
    poke();
  });
  const bytes = (): Buffer => Buffer.concat(chunks);
  const until = (done: (bytes: Buffer) => boolean, what: string, ms = 5_000): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const seen = (): string => JSON.stringify(bytes().subarray(0, 600).toString('latin1'));
      const timer = setTimeout(() => stop(new Error(`expected ${what} within ${ms} ms; got ${seen()}`)), ms);
      const stop = (error?: Error): void => {
        clearTimeout(timer);
        waiters.delete(check);
        if (error === undefined) resolve(bytes());
        else reject(error);
      };
      const check = (): void => {
        if (done(bytes())) stop();
        else if (closed) stop(new Error(`expected ${what}, the connection closed first; got ${seen()}`));
      };
      waiters.add(check);
      check();
    });
  return {
    socket,
    get closed() {
      return closed;
    },
    bytes,
    until,
    whenClosed: (ms = 5_000) => until(() => closed, 'the connection to close', ms),
  };
}

interface Response {
  readonly status: number;
  readonly head: string;
  readonly headers: Record<string, string>;
  /** The payload, chunked framing removed. */
  readonly body: Buffer;
  /** The body bytes as they were on the wire. */
  readonly framed: Buffer;
}

/** Splits a client's byte stream into responses; stops at the first incomplete one. `bodiless(i)`: the i-th answers a HEAD. */
function responses(bytes: Buffer, { closed = false, bodiless = (_i: number) => false } = {}): { list: Response[]; rest: Buffer } {
  const list: Response[] = [];
  let at = 0;
  while (at < bytes.length) {
    const headEnd = bytes.indexOf('\r\n\r\n', at);
    if (headEnd === -1) break;
    const head = bytes.subarray(at, headEnd).toString('latin1');
    const [statusLine = '', ...lines] = head.split('\r\n');
    const status = Number(statusLine.split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const line of lines) headers[line.slice(0, line.indexOf(':')).toLowerCase()] = line.slice(line.indexOf(':') + 1).trim();
    const start = headEnd + 4;
    let next: number;
    let body: Buffer;
    if (status < 200 || status === 204 || status === 304 || bodiless(list.length)) [next, body] = [start, Buffer.alloc(0)];
    else if (headers['transfer-encoding'] === 'chunked') {
      const decoded = dechunk(bytes, start);
      if (decoded === undefined) break;
      [next, body] = decoded;
    } else if (headers['content-length'] !== undefined) {
      next = start + Number(headers['content-length']);
      if (next > bytes.length) break;
      body = bytes.subarray(start, next);
    } else if (closed) [next, body] = [bytes.length, bytes.subarray(start)];
    else break;
    list.push({ status, head, headers, body, framed: bytes.subarray(start, next) });
    at = next;
  }
  return { list, rest: bytes.subarray(at) };
}

function dechunk(bytes: Buffer, from: number): [number, Buffer] | undefined {
  const parts: Buffer[] = [];
  for (let at = from; ; ) {
    const eol = bytes.indexOf('\r\n', at);
    if (eol === -1) return undefined;
    const size = parseInt(bytes.subarray(at, eol).toString('latin1').split(';')[0] as string, 16);
    if (size === 0) {
      const end = bytes.indexOf('\r\n\r\n', eol);
      return end === -1 ? undefined : [end + 4, Buffer.concat(parts)];
    }
    if (eol + size + 4 > bytes.length) return undefined;
    parts.push(bytes.subarray(eol + 2, eol + 2 + size));
    at = eol + size + 4;
  }
}

const count = (n: number, options?: Parameters<typeof responses>[1]) => (bytes: Buffer) => responses(bytes, options).list.length >= n;
const get = (path: string, method = 'GET', version = '1.1'): string => `${method} ${path} HTTP/${version}\r\nHost: test\r\n\r\n`;

async function collect(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of req) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

/** Serves `size` bytes of Content-Length body in 64 KiB writes that honour backpressure; says whether a write ever returned false. */
async function bigUpstream(size: number): Promise<Served & { written(): number; blocked(): boolean }> {
  let written = 0;
  let blocked = false;
  const served = await httpUpstream((_req, res) => {
    res.writeHead(200, { 'content-length': size });
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const pump = (): void => {
      while (written < size) {
        written += chunk.length;
        if (!res.write(chunk)) {
          blocked = true;
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
  });
  return { ...served, written: () => written, blocked: () => blocked };
}

describe('forwarding through the socket data plane', () => {
  it('answers three GETs pipelined in one packet in order, over one upstream connection', BOUNDED, async () => {
    const upstream = await httpUpstream((req, res) => res.end(`you asked for ${req.url}`));
    const proxy = await proxyTo(upstream.port);
    const client = await rawClient(proxy.port);
    client.socket.write(get('/a') + get('/b') + get('/c'));
    const { list, rest } = responses(await client.until(count(3), 'three responses'));
    assert.deepEqual(list.map((r) => [r.status, r.body.toString()]), [[200, 'you asked for /a'], [200, 'you asked for /b'], [200, 'you asked for /c']]);
    assert.equal(rest.length, 0);
    assert.equal(upstream.connections(), 1);
    assert.equal(client.closed, false);
  });

  it('passes a 1 MiB Content-Length request body through byte for byte', BOUNDED, async () => {
    const received: Buffer[] = [];
    const upstream = await httpUpstream(async (req, res) => {
      received.push(await collect(req));
      res.end('stored');
    });
    const proxy = await proxyTo(upstream.port);
    const client = await rawClient(proxy.port);
    const body = randomBytes(1024 * 1024);
    client.socket.write(`POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: ${body.length}\r\n\r\n`);
    client.socket.write(body);
    const [response] = responses(await client.until(count(1), 'the response', 15_000)).list;
    assert.equal(response?.status, 200);
    assert.equal(received.length, 1);
    assert.ok(received[0]?.equals(body), `the app got ${received[0]?.length} bytes that differ from the ${body.length} sent`);
  });

  it('hands a chunked request body to the app as the same bytes, without chunk extensions or trailers', BOUNDED, async () => {
    const seen: Array<{ body: string; trailers: object; rawTrailers: string[] }> = [];
    const upstream = await httpUpstream(async (req, res) => {
      const body = (await collect(req)).toString();
      seen.push({ body, trailers: req.trailers, rawTrailers: req.rawTrailers });
      res.end('ok');
    });
    const proxy = await proxyTo(upstream.port);
    const client = await rawClient(proxy.port);
    client.socket.write('POST /chunks HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n5;name=value\r\nhello\r\n6;ext\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\n');
    assert.equal(responses(await client.until(count(1), 'the response')).list[0]?.status, 200);
    assert.deepEqual(seen, [{ body: 'hello world', trailers: {}, rawTrailers: [] }]);
  });

  describe('a chunked response', () => {
    const chunkedUpstream = (): Promise<Served> =>
      httpUpstream((_req, res) => {
        res.write('hello ');
        setImmediate(() => res.end('world'));
      });

    it('reaches an HTTP/1.1 client with its chunked framing unchanged', BOUNDED, async () => {
      const proxy = await proxyTo((await chunkedUpstream()).port);
      const client = await rawClient(proxy.port);
      client.socket.write(get('/chunked'));
      const [response] = responses(await client.until(count(1), 'the response')).list;
      assert.equal(response?.headers['transfer-encoding'], 'chunked');
      assert.equal(response.head.match(/transfer-encoding/gi)?.length, 1);
      assert.equal(response.framed.toString(), '6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n');
      assert.equal(response.body.toString(), 'hello world');
      assert.equal(client.closed, false);
    });

    it('reaches an HTTP/1.0 client unframed, and the connection closes', BOUNDED, async () => {
      const proxy = await proxyTo((await chunkedUpstream()).port);
      const client = await rawClient(proxy.port);
      client.socket.write(get('/chunked', 'GET', '1.0'));
      const { list } = responses(await client.whenClosed(), { closed: true });
      assert.equal(list.length, 1);
      assert.equal(list[0]?.headers['transfer-encoding'], undefined);
      assert.equal(list[0]?.headers.connection, 'close');
      assert.equal(list[0]?.body.toString(), 'hello world');
    });
  });

  describe('Expect: 100-continue', () => {
    const expecting = 'POST /upload HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n';

    it('is answered with 100 Continue only once the handler forwards, and the body then goes through', BOUNDED, async () => {
      const seen: Array<{ body: string; expect: string | undefined }> = [];
      const upstream = await httpUpstream(async (req, res) => {
        seen.push({ body: (await collect(req)).toString(), expect: req.headers.expect });
        res.end('got it');
      });
      let client: RawClient | undefined;
      let bytesBeforeForward = -1;
      const proxy = await proxyTo(upstream.port, {
        handle: async (x, forward) => {
          await delay(100);
          bytesBeforeForward = client?.bytes().length ?? -1;
          return forward(x);
        },
      });
      client = await rawClient(proxy.port);
      client.socket.write(expecting);
      await client.until((b) => b.includes('\r\n\r\n'), '100 Continue');
      assert.equal(bytesBeforeForward, 0, 'bytes reached the client before the handler forwarded');
      assert.equal(client.bytes().toString(), 'HTTP/1.1 100 Continue\r\n\r\n');
      client.socket.write('hello');
      const { list } = responses(await client.until(count(2), 'the final response'));
      assert.deepEqual(list.map((r) => [r.status, r.body.toString()]), [[100, ''], [200, 'got it']]);
      assert.deepEqual(seen, [{ body: 'hello', expect: undefined }]);
    });

    it('is not answered when the handler refuses, and the connection closes after the 403', BOUNDED, async () => {
      const upstream = await httpUpstream((_req, res) => res.end('never'));
      const proxy = await proxyTo(upstream.port, {
        handle: async (x) => {
          x.respond(403, ['content-type', 'text/plain'], 'not you');
          return 403;
        },
      });
      const client = await rawClient(proxy.port);
      client.socket.write(expecting);
      const bytes = await client.whenClosed();
      assert.ok(!bytes.includes('100 Continue'), bytes.toString());
      const { list, rest } = responses(bytes, { closed: true });
      assert.deepEqual(list.map((r) => [r.status, r.headers.connection, r.body.toString()]), [[403, 'close', 'not you']]);
      assert.equal(rest.length, 0);
      assert.equal(upstream.connections(), 0);
    });
  });

  describe('responses without a body', () => {
    it('a HEAD answer with Content-Length carries no body and the connection serves the next GET', BOUNDED, async () => {
      const upstream = await httpUpstream((req, res) => {
        res.setHeader('content-length', 11);
        res.end(req.method === 'HEAD' ? undefined : 'hello world');
      });
      const proxy = await proxyTo(upstream.port);
      const client = await rawClient(proxy.port);
      const headOnly = { bodiless: (i: number) => i === 0 };
      client.socket.write(get('/h', 'HEAD'));
      const [head] = responses(await client.until(count(1, headOnly), 'the HEAD response'), headOnly).list;
      assert.equal(head?.headers['content-length'], '11');
      client.socket.write(get('/h'));
      const { list, rest } = responses(await client.until(count(2, headOnly), 'the GET response'), headOnly);
      assert.deepEqual(list.map((r) => [r.status, r.body.toString()]), [[200, ''], [200, 'hello world']]);
      assert.equal(rest.length, 0);
    });

    it('204 and 304 answers carry no body', BOUNDED, async () => {
      const upstream = await httpUpstream((req, res) => {
        if (req.url === '/204') res.writeHead(204).end();
        else if (req.url === '/304') res.writeHead(304, { etag: '"v1"' }).end();
        else res.end('after');
      });
      const proxy = await proxyTo(upstream.port);
      const client = await rawClient(proxy.port);
      client.socket.write(get('/204') + get('/304') + get('/after'));
      const { list, rest } = responses(await client.until(count(3), 'three responses'));
      assert.deepEqual(list.map((r) => [r.status, r.body.toString()]), [[204, ''], [304, ''], [200, 'after']]);
      assert.equal(rest.length, 0);
    });

    it('1xx interim answers from the upstream are not relayed, the final 200 is', BOUNDED, async () => {
      const upstream = await httpUpstream((_req, res) => {
        res.writeEarlyHints({ link: '</style.css>; rel=preload' });
        res.writeProcessing();
        setImmediate(() => res.end('final'));
      });
      const proxy = await proxyTo(upstream.port);
      const client = await rawClient(proxy.port);
      client.socket.write(get('/early'));
      const { list, rest } = responses(await client.until((b) => responses(b).list.some((r) => r.status >= 200), 'the final response'));
      assert.deepEqual(list.map((r) => [r.status, r.body.toString()]), [[200, 'final']]);
      assert.equal(rest.length, 0);
    });
  });

  it('relays a response framed by the upstream closing, whole, and closes the client connection', BOUNDED, async () => {
    const upstream = await rawUpstream((socket) => socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\n\r\nabc')));
    const proxy = await proxyTo(upstream.port);
    const client = await rawClient(proxy.port);
    client.socket.write(get('/until-close'));
    const { list } = responses(await client.whenClosed(), { closed: true });
    assert.deepEqual(list.map((r) => [r.status, r.headers.connection, r.body.toString()]), [[200, 'close', 'abc']]);
    assert.equal(await within(proxy.outcomes[0] as Promise<number | string>, 5_000, 'the forward to settle'), 200);
  });

  describe('backpressure', () => {
    const SIZE = 32 * 1024 * 1024;

    /** A client that reads nothing for `pauseMs`, then everything; samples what the proxy buffers for it meanwhile. */
    async function slowReader(upstreamPort: number, size: number, pauseMs: number) {
      let drainListenersBefore = -1;
      const proxy = await proxyTo(upstreamPort, {
        handle: (x, forward) => {
          drainListenersBefore = x.socket.listenerCount('drain');
          return forward(x);
        },
      });
      const client = connect(proxy.port, '127.0.0.1');
      cleanups.push(() => client.destroy());
      client.pause();
      client.write(get('/big'));
      await within(once(client, 'connect'), 5_000, 'a connection');
      await delay(pauseMs);
      const proxySide = (proxy.exchanges[0] as Exchange).socket;
      const bufferedWhilePaused = proxySide.writableLength;
      let received = 0;
      let head = Buffer.alloc(0);
      let headLength = -1;
      const all = new Promise<void>((resolve) =>
        client.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (headLength === -1 && (head = Buffer.concat([head, chunk])).includes('\r\n\r\n')) headLength = head.indexOf('\r\n\r\n') + 4;
          if (headLength !== -1 && received - headLength >= size) resolve();
        }),
      );
      client.resume();
      await within(all, 20_000, `${size} bytes`);
      const outcome = await within(proxy.outcomes[0] as Promise<number | string>, 5_000, 'the forward to settle');
      await delay(50);
      return { bufferedWhilePaused, body: received - headLength, outcome, drainListenersBefore, drainListenersAfter: proxySide.listenerCount('drain') };
    }

    it('a client that does not read stops the upstream; it then gets all 32 MiB', BOUNDED, async () => {
      const upstream = await bigUpstream(SIZE);
      const started = slowReader(upstream.port, SIZE, 500);
      // Sampled during the pause: the proxy holds little for the client, and the upstream is held back.
      await delay(450);
      assert.ok(upstream.blocked(), 'the upstream never saw res.write return false');
      assert.ok(upstream.written() < SIZE, `the upstream wrote all ${SIZE} bytes to a client that read none`);
      const result = await started;
      assert.ok(result.bufferedWhilePaused < 2 * 1024 * 1024, `the proxy buffered ${result.bufferedWhilePaused} bytes for a paused client`);
      assert.equal(result.outcome, 200);
      assert.equal(result.body, SIZE);
    });

    it('leaves no drain listeners behind on the client connection once the response is through', BOUNDED, async () => {
      const upstream = await bigUpstream(4 * 1024 * 1024);
      const result = await slowReader(upstream.port, 4 * 1024 * 1024, 200);
      assert.equal(result.outcome, 200);
      assert.equal(result.drainListenersAfter, result.drainListenersBefore, `${result.drainListenersAfter - result.drainListenersBefore} drain listeners left on a kept-alive client socket`);
    });
  });

  describe('a client going away mid-response', () => {
    /** The upstream sends a head and a first part, then nothing; `leave` is how the client goes once it has read that part. */
    async function abandon(leave: (socket: Socket) => void): Promise<{ upstreamCut: Promise<boolean>; outcome: Promise<number | string> }> {
      let cut: (finished: boolean) => void = () => {};
      const upstreamCut = new Promise<boolean>((resolve) => (cut = resolve));
      const upstream = await httpUpstream((_req, res) => {
        res.on('close', () => cut(res.writableFinished));
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first part');
      });
      // A long upstream timeout, so only the client's going can cut the upstream within the test's bounds.
      const proxy = await proxyTo(upstream.port, { timeoutMs: 20_000 });
      const client = await rawClient(proxy.port);
      client.socket.write(get('/stream'));
      await client.until((b) => b.includes('first part'), 'the first part');
      leave(client.socket);
      return { upstreamCut, outcome: proxy.outcomes[0] as Promise<number | string> };
    }

    it('a reset (RST) cuts the upstream connection and the forward resolves with the status', BOUNDED, async () => {
      const { upstreamCut, outcome } = await abandon((socket) => socket.resetAndDestroy());
      assert.equal(await within(upstreamCut, 3_000, "the upstream response's close"), false);
      assert.equal(await within(outcome, 3_000, 'the forward to settle'), 200);
    });

    it('a close (FIN) while the upstream is silent cuts the upstream connection and the forward resolves', BOUNDED, async () => {
      const { upstreamCut, outcome } = await abandon((socket) => socket.destroy());
      assert.equal(await within(upstreamCut, 3_000, "the upstream response's close after the client closed its connection"), false);
      assert.equal(await within(outcome, 3_000, 'the forward to settle'), 200);
    });
  });

  describe('upstream failures before an answer', () => {
    async function answer(upstreamPort: number, timeoutMs = 5_000) {
      const proxy = await proxyTo(upstreamPort, { timeoutMs });
      const client = await rawClient(proxy.port);
      const started = performance.now();
      client.socket.write(get('/'));
      const [response] = responses(await client.until(count(1), 'a response', timeoutMs + 5_000)).list;
      const outcome = await within(proxy.outcomes[0] as Promise<number | string>, 1_000, 'the forward to settle');
      return { status: response?.status, body: response?.body.toString(), outcome, elapsed: performance.now() - started };
    }

    it('a silent upstream: forward rejects with BATON_UPSTREAM_TIMEOUT after timeoutMs', BOUNDED, async () => {
      const upstream = await httpUpstream(() => {});
      const { status, body, outcome, elapsed } = await answer(upstream.port, 300);
      assert.deepEqual([status, body, outcome], [504, UPSTREAM_TIMEOUT, UPSTREAM_TIMEOUT]);
      assert.ok(elapsed >= 250 && elapsed < 3_300, `answered after ${Math.round(elapsed)} ms`);
    });

    it('an upstream refusing the connection: forward rejects with ECONNREFUSED', BOUNDED, async () => {
      const closedServer = createNetServer();
      const port = await listenOnLoopback(closedServer);
      await new Promise((resolve) => closedServer.close(resolve));
      const { status, body, outcome } = await answer(port);
      assert.deepEqual([status, body, outcome], [502, 'ECONNREFUSED', 'ECONNREFUSED']);
    });

    it('an upstream answering garbage: forward rejects with BATON_UPSTREAM_MALFORMED', BOUNDED, async () => {
      const upstream = await rawUpstream((socket) => socket.once('data', () => socket.write('this is not HTTP\r\n\r\n')));
      const { status, body, outcome } = await answer(upstream.port);
      assert.deepEqual([status, body, outcome], [502, UPSTREAM_MALFORMED, UPSTREAM_MALFORMED]);
    });
  });

  describe('a kept-alive upstream connection closed by the upstream between requests', () => {
    async function twoGets(upstreamPort: number, between: () => Promise<unknown> = async () => {}): Promise<Response[]> {
      const proxy = await proxyTo(upstreamPort);
      const client = await rawClient(proxy.port);
      client.socket.write(get('/1'));
      await client.until(count(1), 'the first response');
      await between();
      client.socket.write(get('/2'));
      return responses(await client.until(count(2), 'the second response')).list;
    }

    it('after its keep-alive timeout: the next GET succeeds on a new connection', BOUNDED, async () => {
      const upstream = await httpUpstream((req, res) => res.end(`ok ${req.url}`), { keepAliveTimeout: 50, keepAliveTimeoutBuffer: 0 });
      const list = await twoGets(upstream.port, async () => {
        await delay(200);
        await within(
          (async () => {
            while (upstream.sockets.size > 0) await delay(10);
          })(),
          5_000,
          'the upstream to close its idle connection',
        );
      });
      assert.deepEqual(list.map((r) => [r.status, r.body.toString()]), [[200, 'ok /1'], [200, 'ok /2']]);
      assert.equal(upstream.connections(), 2);
    });

    it('right after its first response, without Connection: close: the next GET succeeds', BOUNDED, async () => {
      const upstream = await rawUpstream((socket) => socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')));
      const list = await twoGets(upstream.port);
      assert.deepEqual(list.map((r) => [r.status, r.body.toString()]), [[200, 'ok'], [200, 'ok']]);
      assert.equal(upstream.connections(), 2);
    });

    it('as the next bodiless request arrives: that request is retried once on a fresh connection', BOUNDED, async () => {
      let requests = 0;
      const upstream = await rawUpstream((socket) => {
        let onThisConnection = 0;
        socket.on('data', () => {
          requests++;
          if (++onThisConnection === 1) socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nok ${requests}`);
          else socket.end();
        });
      });
      const list = await twoGets(upstream.port);
      assert.deepEqual(list.map((r) => [r.status, r.body.toString()]), [[200, 'ok 1'], [200, 'ok 3']]);
      assert.equal(upstream.connections(), 2);
    });
  });

  describe('requests the server refuses itself (options.refuse)', () => {
    async function refused(bytes: string, options: ProxyOptions = {}) {
      const proxy = await proxyTo((await httpUpstream((_req, res) => res.end('never'))).port, options);
      const client = await rawClient(proxy.port);
      client.socket.write(bytes);
      const { list } = responses(await client.whenClosed(), { closed: true });
      return { statuses: list.map((r) => r.status), refusals: proxy.refusals.map((r) => r.status), handled: proxy.exchanges.length };
    }

    it('a head over maxHeadBytes: 431', BOUNDED, async () => {
      const result = await refused(`GET / HTTP/1.1\r\nHost: test\r\nX-Big: ${'a'.repeat(2_000)}\r\n\r\n`, { maxHeadBytes: 1_024 });
      assert.deepEqual(result, { statuses: [431], refusals: [431], handled: 0 });
    });

    it('Content-Length together with Transfer-Encoding: 400', BOUNDED, async () => {
      const result = await refused('POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
      assert.deepEqual(result, { statuses: [400], refusals: [400], handled: 0 });
    });

    it('a head trickled in slower than headersTimeoutMs: 408', BOUNDED, async () => {
      const proxy = await proxyTo((await httpUpstream((_req, res) => res.end('never'))).port, { headersTimeoutMs: 300, keepAliveTimeoutMs: 2_000 });
      const client = await rawClient(proxy.port);
      const started = performance.now();
      client.socket.write('GET / HTTP/1.1\r\nHost: test\r\nX-Slow: ');
      // One byte every 50 ms: never idle for keepAliveTimeoutMs, never a whole head within headersTimeoutMs.
      const trickle = setInterval(() => client.socket.write('a'), 50);
      try {
        const { list } = responses(await client.whenClosed(4_000), { closed: true });
        const elapsed = performance.now() - started;
        assert.deepEqual(list.map((r) => r.status), [408]);
        assert.deepEqual(proxy.refusals.map((r) => r.status), [408]);
        assert.ok(elapsed >= 250 && elapsed < 3_000, `refused after ${Math.round(elapsed)} ms`);
      } finally {
        clearInterval(trickle);
      }
    });

    it('an idle connection is closed after keepAliveTimeoutMs, without a response', BOUNDED, async () => {
      const proxy = await proxyTo((await httpUpstream((_req, res) => res.end('ok'))).port, { keepAliveTimeoutMs: 300 });
      const client = await rawClient(proxy.port);
      client.socket.write(get('/'));
      await client.until(count(1), 'the response');
      const idleSince = performance.now();
      const { list, rest } = responses(await client.whenClosed(5_000));
      const idle = performance.now() - idleSince;
      assert.deepEqual(list.map((r) => r.status), [200]);
      assert.equal(rest.length, 0);
      assert.deepEqual(proxy.refusals, []);
      assert.ok(idle >= 250 && idle < 4_000, `closed after ${Math.round(idle)} ms idle`);
    });
  });

  it('while draining, a response carries connection: close and the connection closes after it', BOUNDED, async () => {
    const upstream = await httpUpstream((req, res) => res.end(`ok ${req.url}`));
    const proxy = await proxyTo(upstream.port);
    const client = await rawClient(proxy.port);
    client.socket.write(get('/before'));
    const [before] = responses(await client.until(count(1), 'the first response')).list;
    assert.equal(before?.headers.connection, undefined);
    proxy.draining = true;
    client.socket.write(get('/during'));
    const { list, rest } = responses(await client.whenClosed(), { closed: true });
    assert.deepEqual(list.map((r) => [r.status, r.headers.connection, r.body.toString()]), [[200, undefined, 'ok /before'], [200, 'close', 'ok /during']]);
    assert.equal(rest.length, 0);
  });
});
