/**
 * The socket data plane under test: a tiny proxy built from createHttp1Server
 * (src/dataplane/server.ts) and createUpstreams (src/dataplane/pool.ts),
 * real node:http and raw node:net upstreams on loopback, and raw node:net
 * clients, where the bytes on the wire are the behaviour under test. Each
 * test file that uses these calls `cleanUpAfterEach()` once.
 */
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type ServerOptions } from 'node:http';
import { connect, createServer as createNetServer, type Server, type Socket } from 'node:net';
import { afterEach } from 'node:test';
import type { HttpStream, RequestStream } from '../../src/dataplane/stream.ts';
import { endToEndHeaders } from '../../src/dataplane/wire.ts';
import type { ConnectionRefusal } from '../../src/dataplane/client-connection.ts';
import { createHttp1Server, type Http1ServerOptions } from '../../src/dataplane/server.ts';
import { createUpstreams } from '../../src/dataplane/pool.ts';
import { UPSTREAM_TIMEOUT, type UpstreamFailure } from '../../src/dataplane/forward-call.ts';
import { handling, type TestHandler } from './http-server.ts';
import { listenOnLoopback } from './net.ts';

export const BOUNDED = { timeout: 30_000 };
export const cleanups: Array<() => void> = [];
/** Registers the teardown of everything these helpers start, after each test of the calling file. */
export function cleanUpAfterEach(): void {
  afterEach(() =>
    cleanups
      .splice(0)
      .reverse()
      .forEach((cleanup) => cleanup()),
  );
}
export const cleanUp = (cleanup: () => void): void => void cleanups.push(cleanup);

/** A listener's limits for tests about one of them: 8 KiB heads, 5 s timeouts, 100 connections (each and per peer), an empty refusal. */
export const planeOptions = (overrides: Partial<Http1ServerOptions> = {}): Http1ServerOptions => ({
  maxHeadBytes: 8_192,
  keepAliveTimeoutMs: 5_000,
  headersTimeoutMs: 5_000,
  handshakeTimeoutMs: 5_000,
  maxConnections: 100,
  maxConnectionsPerPeer: 100,
  refusal: () => ({ fields: [], body: '' }),
  ...overrides,
});

export type Served = { readonly port: number; readonly sockets: Set<Socket>; connections(): number };

/** Listens on a loopback port 0, counts accepted connections, and closes it all after the test. */
export async function serve(server: Server): Promise<Served> {
  const sockets = new Set<Socket>();
  let count = 0;
  server.on('connection', (socket: Socket) => {
    count++;
    sockets.add(socket.once('close', () => sockets.delete(socket)));
  });
  const port = await listenOnLoopback(server);
  cleanups.push(
    () => server.close(),
    () => sockets.forEach((socket) => socket.destroy()),
  );
  return { port, sockets, connections: () => count };
}
export const httpUpstream = (listener: TestHandler, options: ServerOptions = {}): Promise<Served> =>
  serve(createHttpServer(options, handling(listener)));
export const rawUpstream = (onConnection: (socket: Socket) => void): Promise<Served> =>
  serve(createNetServer(onConnection));

/** What the sidecar's forwarder does to a request head: drop hop-by-hop and framing fields, those Connection names, and Expect. */
export const requestHeaders = (x: HttpStream): string[] =>
  endToEndHeaders(x.head, 'request', (name) => name === 'expect');

/** A forward's status, or the UpstreamFailure code it rejected with. */
export type Outcome = Promise<number | string>;
export type Forward = (x: HttpStream) => Outcome;
export type ProxyOptions = {
  timeoutMs?: number;
  maxHeadBytes?: number;
  keepAliveTimeoutMs?: number;
  headersTimeoutMs?: number;
  handle?: (x: HttpStream, forward: Forward) => Outcome;
  headers?: (x: HttpStream) => string[];
};
export type Proxy = {
  port: number;
  refusals: ConnectionRefusal[];
  failures: UpstreamFailure[];
  streams: HttpStream[];
  outcomes: Outcome[];
  drain(): void;
  retries: number;
};

/** The tiny proxy: every request forwarded (or given to `handle`), a failure answered 504/502 with its code. */
export async function proxyTo(upstreamPort: number, options: ProxyOptions = {}): Promise<Proxy> {
  const upstreams = createUpstreams({
    connectTimeoutMs: 2_000,
    keepAliveTimeoutMs: 10_000,
    maxHeadBytes: 16_384,
    maxIdlePerOrigin: 256,
    onRetry: () => proxy.retries++,
  });
  const origin = {
    key: `127.0.0.1:${upstreamPort}`,
    host: '127.0.0.1',
    port: upstreamPort,
    authority: `127.0.0.1:${upstreamPort}`,
  };
  const forward: Forward = (x) =>
    upstreams
      .forward(x, {
        origin,
        path: x.url,
        host: x.headers.host ?? '',
        headers: (options.headers ?? requestHeaders)(x),
        timeoutMs: options.timeoutMs ?? 5_000,
      })
      .catch((error: UpstreamFailure) => {
        proxy.failures.push(error);
        x.respond(error.code === UPSTREAM_TIMEOUT ? 504 : 502, ['content-type', 'text/plain'], error.code);
        return error.code;
      });
  const proxy: Proxy = {
    port: 0,
    refusals: [],
    failures: [],
    streams: [],
    outcomes: [],
    drain: () => plane.drain(),
    retries: 0,
  };
  const handler = (x: HttpStream): void => {
    proxy.streams.push(x);
    proxy.outcomes.push(options.handle === undefined ? forward(x) : options.handle(x, forward));
  };
  const refusal = (refused: ConnectionRefusal) => {
    proxy.refusals.push(refused);
    return { fields: [], body: '' };
  };
  const { maxHeadBytes = 8_192, keepAliveTimeoutMs = 5_000, headersTimeoutMs = 5_000 } = options;
  const plane = createHttp1Server(handler as (stream: RequestStream) => void, {
    maxHeadBytes,
    keepAliveTimeoutMs,
    headersTimeoutMs,
    handshakeTimeoutMs: 5_000,
    maxConnections: 1_000,
    maxConnectionsPerPeer: 1_000,
    refusal,
  });
  proxy.port = (await serve(plane.server)).port;
  cleanups.push(
    () => upstreams.close(),
    () => plane.closeAll(),
  );
  return proxy;
}

/** `promise`, which must settle within `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error(`expected ${what} within ${ms} ms`)), ms)),
  );
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

export type RawClient = Awaited<ReturnType<typeof rawClient>>;

/** A client on a plain socket; `until` resolves with all bytes read once `done(them)` holds, and rejects if the connection closes first or after `ms`. */
export async function rawClient(port: number) {
  const socket = connect(port, '127.0.0.1');
  cleanups.push(() => socket.destroy());
  socket.on('error', () => {});
  await within(once(socket, 'connect'), 5_000, 'a connection');
  const chunks: Buffer[] = [];
  const waiters = new Set<() => void>();
  let closed = false;
  const poke = (_cause?: unknown): void => [...waiters].forEach((waiter) => waiter());
  socket.on('data', (chunk: Buffer) => poke(chunks.push(chunk)));
  socket.on('close', () => poke((closed = true)));
  const bytes = (): Buffer => Buffer.concat(chunks);
  const until = (done: (bytes: Buffer) => boolean, what: string, ms = 5_000): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const failed = (why: string): Error =>
        new Error(`expected ${what}${why}; got ${JSON.stringify(bytes().subarray(0, 600).toString('latin1'))}`);
      const stop = (error?: Error): void => {
        clearTimeout(timer);
        waiters.delete(check);
        if (error === undefined) resolve(bytes());
        else reject(error);
      };
      const check = (): void =>
        done(bytes()) ? stop() : closed ? stop(failed(', the connection closed first')) : undefined;
      const timer = setTimeout(() => stop(failed(` within ${ms} ms`)), ms);
      waiters.add(check);
      check();
    });
  const whenClosed = (ms = 5_000): Promise<Buffer> => until(() => closed, 'the connection to close', ms);
  return {
    socket,
    bytes,
    until,
    whenClosed,
    get closed() {
      return closed;
    },
  };
}

/** One response off the wire: `body` without chunked framing, `framed` the body bytes as sent. */
export type Response = { status: number; head: string; headers: Record<string, string>; body: Buffer; framed: Buffer };
/** `closed`: a response without length runs to the end; `bodiless(i)`: the i-th response answers a HEAD. */
export type Reading = { closed?: boolean; bodiless?: (i: number) => boolean };

/** Splits a client's byte stream into responses, stopping at the first incomplete one. */
export function responses(
  bytes: Buffer,
  { closed = false, bodiless = () => false }: Reading = {},
): { list: Response[]; rest: Buffer } {
  const list: Response[] = [];
  let at = 0;
  while (at < bytes.length) {
    const headEnd = bytes.indexOf('\r\n\r\n', at);
    if (headEnd === -1) break;
    const head = bytes.subarray(at, headEnd).toString('latin1');
    const [statusLine = '', ...lines] = head.split('\r\n');
    const status = Number(statusLine.split(' ')[1]);
    const headers = Object.fromEntries(
      lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]),
    );
    const start = headEnd + 4;
    const length = Number(headers['content-length']);
    let next: number | undefined;
    let body: Buffer | undefined;
    if (status < 200 || status === 204 || status === 304 || bodiless(list.length)) next = start;
    else if (headers['transfer-encoding'] === 'chunked') [next, body] = dechunk(bytes, start) ?? [];
    else if (headers['content-length'] !== undefined)
      next = start + length <= bytes.length ? start + length : undefined;
    else if (closed) next = bytes.length;
    if (next === undefined) break;
    list.push({
      status,
      head,
      headers,
      body: body ?? bytes.subarray(start, next),
      framed: bytes.subarray(start, next),
    });
    at = next;
  }
  return { list, rest: bytes.subarray(at) };
}

export function dechunk(bytes: Buffer, from: number): [number, Buffer] | undefined {
  const parts: Buffer[] = [];
  for (let at = from; ;) {
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

export const count = (n: number, reading?: Reading) => (bytes: Buffer) => responses(bytes, reading).list.length >= n;
export const get = (path: string, method = 'GET', version = '1.1'): string =>
  `${method} ${path} HTTP/${version}\r\nHost: test\r\n\r\n`;
export const summary = (list: Response[]) => list.map((r) => [r.status, r.body.toString()]);

export async function collect(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of req) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}
