/**
 * The origins of the hop harness, each on a loopback port, each recording
 * what it read as a list of events shared across its connections, in order
 * of arrival:
 *
 * - a node:http server (its own llhttp, its defaults), recording each
 *   request at its head and marking it complete at its end;
 * - a raw-socket recorder that frames requests with ./reference-framer.ts
 *   (RFC 9112 alone, no llhttp), and can answer with any bytes at all;
 * - a wire tap, a byte-for-byte TCP relay in front of any of them, counting
 *   every byte the origin's listener was sent, so that "not a byte went
 *   upstream" is checked exactly, whatever the origin makes of the bytes.
 *
 * Every origin answers a request with an echo: a JSON body naming the
 * method, target and `baton-subject` it read, so the client can tell whose
 * request an answer belongs to.
 */
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, createServer as createNetServer, type Server, type Socket } from 'node:net';
import { listenOnLoopback } from '../../helpers/net.ts';
import { type FramedRequest, type Framing, RequestFramer, trimOws } from './reference-framer.ts';

/** One request as an origin read it: names and values as latin1 strings, in order. */
export interface ObservedRequest {
  readonly kind: 'request';
  readonly connection: number;
  readonly method: string;
  readonly target: string;
  readonly version: string;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly framing: Framing;
  readonly body: Buffer;
  readonly complete: boolean;
}

/** The origin refused the connection's bytes from here on (node's clientError, the framer's refusal). */
export interface ObservedRefusal {
  readonly kind: 'refused';
  readonly connection: number;
  readonly reason: string;
}

/** Bytes on an open connection that are not yet a whole head: what a desync leaves behind. */
export interface ObservedPartial {
  readonly kind: 'partial';
  readonly connection: number;
  readonly bytes: number;
}

export type OriginEvent = ObservedRequest | ObservedRefusal | ObservedPartial;

/** Where an origin's record stood: events so far, connections so far. */
export interface OriginMark {
  readonly events: number;
  readonly connections: number;
}

export interface Origin {
  readonly port: number;
  /**
   * Events since `mark`, copied now (a request still arriving as it is now), then open partial heads.
   * `fresh`: only those on connections accepted since the mark (a straight connection's own).
   */
  snapshot(mark: OriginMark, fresh: boolean): OriginEvent[];
  mark(): OriginMark;
  /** performance.now() of the last byte read or event. */
  lastActivity(): number;
  close(): Promise<void>;
}

/** What an origin answers a request with: the echo, as JSON. */
export function echoBody(method: string, target: string, headers: ReadonlyArray<readonly [string, string]>): string {
  const subject = headers.find(([name]) => name.toLowerCase() === 'baton-subject')?.[1] ?? null;
  return JSON.stringify({ method, target, subject });
}

function track(server: Server): () => Promise<void> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });
}

/** A request an origin is reading: the body grows until it completes. */
interface Reading {
  readonly head: Omit<ObservedRequest, 'body' | 'complete'>;
  readonly parts: Buffer[];
  complete: boolean;
}

type Recorded = Reading | ObservedRefusal;

/** RFC 9112 §9.3: `close` in Connection, or HTTP/1.0 without `keep-alive`. */
function closes(request: FramedRequest): boolean {
  const options = request.headers
    .filter(([name]) => name.toLowerCase() === 'connection')
    .flatMap(([, value]) => value.toLowerCase().split(',').map(trimOws));
  return options.includes('close') || (request.version === '1.0' && !options.includes('keep-alive'));
}

function observed(record: Recorded): ObservedRequest | ObservedRefusal {
  return 'head' in record ? { ...record.head, body: Buffer.concat(record.parts), complete: record.complete } : record;
}

/** A node:http server on its defaults, recording what it parsed. */
export async function startNodeOrigin(): Promise<Origin> {
  const records: Recorded[] = [];
  let connections = 0;
  let activity = performance.now();
  const ids = new WeakMap<Socket, number>();
  const record = (req: IncomingMessage, res: ServerResponse): void => {
    activity = performance.now();
    const headers: Array<readonly [string, string]> = [];
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2)
      headers.push([req.rawHeaders[i] as string, req.rawHeaders[i + 1] as string]);
    const framing: Framing =
      req.headers['transfer-encoding'] !== undefined
        ? 'chunked'
        : Number(req.headers['content-length'] ?? 0) > 0
          ? 'length'
          : 'none';
    const reading: Reading = {
      head: {
        kind: 'request',
        connection: ids.get(req.socket) ?? -1,
        method: req.method ?? '',
        target: req.url ?? '',
        version: req.httpVersion,
        headers,
        framing,
      },
      parts: [],
      complete: false,
    };
    records.push(reading);
    req.on('data', (chunk: Buffer) => {
      activity = performance.now();
      reading.parts.push(chunk);
    });
    req.on('end', () => {
      activity = performance.now();
      reading.complete = true;
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(echoBody(reading.head.method, reading.head.target, headers));
    });
  };
  const server = createHttpServer(record);
  // An Expect other than 100-continue is read like any request (baton answers Expect itself and drops it).
  server.on('checkExpectation', record);
  // node:http reads its sockets itself (no 'data' events here): its activity is its events; the tap in front sees the bytes.
  server.on('connection', (socket: Socket) => {
    ids.set(socket, connections++);
    activity = performance.now();
  });
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    activity = performance.now();
    const code = error.code ?? 'unknown';
    // node's own answer to a parse error. A reset, or the connection ending inside a message (a body cut short
    // upstream), is not a refusal of bytes: the message stays unfinished.
    if (code.startsWith('HPE_') && code !== 'HPE_INVALID_EOF_STATE') {
      records.push({ kind: 'refused', connection: ids.get(socket) ?? -1, reason: code });
      if (socket.writable)
        socket.end(
          `HTTP/1.1 ${code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request'}\r\nConnection: close\r\n\r\n`,
        );
    }
    socket.destroy();
  });
  const close = track(server);
  const port = await listenOnLoopback(server);
  return {
    port,
    mark: () => ({ events: records.length, connections }),
    snapshot: (mark, fresh) =>
      records
        .slice(mark.events)
        .map(observed)
        .filter((e) => !fresh || e.connection >= mark.connections),
    lastActivity: () => activity,
    close,
  };
}

export interface RawOriginOptions {
  /** The bytes to answer a request with; the echo when undefined. `close`: end the connection after them. */
  readonly answer?: (request: FramedRequest) => { readonly bytes: Buffer; readonly close?: boolean } | undefined;
}

/** The raw-socket recorder: frames with RFC 9112 alone, answers each complete request in order. */
export async function startRawOrigin(options: RawOriginOptions = {}): Promise<Origin> {
  const records: Recorded[] = [];
  const framers = new Map<number, RequestFramer>();
  let connections = 0;
  let activity = performance.now();
  const server = createNetServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    const connection = connections++;
    activity = performance.now();
    let reading: Reading | undefined;
    let closing = false;
    const framer = new RequestFramer({
      onHead(request) {
        reading = {
          head: {
            kind: 'request',
            connection,
            method: request.method,
            target: request.target,
            version: request.version,
            headers: request.headers,
            framing: request.framing,
          },
          parts: [],
          complete: false,
        };
        records.push(reading);
      },
      onBody(bytes) {
        reading?.parts.push(Buffer.from(bytes));
      },
      onComplete(request) {
        if (reading !== undefined) reading.complete = true;
        reading = undefined;
        if (!socket.writable || closing) return;
        // RFC 9112 §9.6: after a request that closes the connection, nothing more on it is read as a request.
        closing = closes(request);
        const answer = options.answer?.(request);
        if (answer === undefined) {
          const body = echoBody(request.method, request.target, request.headers);
          // RFC 9110 §9.3.2: the answer to HEAD has the fields of the answer to GET and no body.
          socket.write(
            `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${request.method === 'HEAD' ? '' : body}`,
          );
        } else {
          socket.write(answer.bytes);
          if (answer.close === true) closing = true;
        }
        if (closing) {
          framer.stop();
          socket.end();
        }
      },
      onRefuse(refusal) {
        records.push({ kind: 'refused', connection, reason: refusal.reason });
        if (socket.writable)
          socket.end(
            `HTTP/1.1 ${refusal.status === 501 ? '501 Not Implemented' : '400 Bad Request'}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`,
          );
      },
    });
    framers.set(connection, framer);
    socket.on('data', (chunk: Buffer) => {
      activity = performance.now();
      if (!closing) framer.push(chunk);
    });
    socket.on('end', () => socket.end());
    socket.on('error', () => undefined);
    socket.once('close', () => framers.delete(connection));
  });
  const close = track(server);
  const port = await listenOnLoopback(server);
  return {
    port,
    mark: () => ({ events: records.length, connections }),
    snapshot(mark, fresh) {
      const out: OriginEvent[] = records.slice(mark.events).map(observed);
      for (const [connection, framer] of framers)
        if (framer.pending > 0) out.push({ kind: 'partial', connection, bytes: framer.pending });
      return out.filter((e) => !fresh || e.connection >= mark.connections);
    },
    lastActivity: () => activity,
    close,
  };
}

export interface WireTap {
  readonly port: number;
  /** Every byte sent towards the origin so far, on every connection. */
  bytesIn(): number;
  lastActivity(): number;
  close(): Promise<void>;
}

/** A byte-for-byte TCP relay in front of `targetPort`, counting what goes through towards it. */
export async function startWireTap(targetPort: number): Promise<WireTap> {
  let bytes = 0;
  let activity = performance.now();
  const server = createNetServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    const upstream = connect({ host: '127.0.0.1', port: targetPort, noDelay: true, allowHalfOpen: true });
    client.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      activity = performance.now();
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on('drain', () => client.resume());
    upstream.on('data', (chunk: Buffer) => {
      activity = performance.now();
      if (!client.write(chunk)) upstream.pause();
    });
    client.on('drain', () => upstream.resume());
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    // A close is movement too: a proxy behind the tap acts on it (an aborted request it may still pass on).
    client.once('close', () => {
      activity = performance.now();
      upstream.destroy();
    });
    upstream.once('close', () => {
      activity = performance.now();
      client.destroy();
    });
  });
  const close = track(server);
  const port = await listenOnLoopback(server);
  return { port, bytesIn: () => bytes, lastActivity: () => activity, close };
}
