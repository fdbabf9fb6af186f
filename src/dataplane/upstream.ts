/**
 * The upstream side of the socket data plane: forwards one Exchange to
 * one origin on a kept-alive connection (node:net, or node:tls with the
 * workload's certificate), and passes the answer back.
 *
 * The request head is written anew (the caller's filtered header list);
 * a Content-Length body is passed through as it came, a chunked one is
 * framed again (chunk extensions and trailers dropped, so the app reads
 * exactly the framing baton checked). The response is framed by the same
 * strict parser and its body bytes are passed through untouched; only
 * its head is rebuilt, without hop-by-hop fields. Backpressure runs both
 * ways: a slow reader pauses the socket that feeds it.
 *
 * Connections are pooled per origin, last in first out, so a client
 * connection's requests keep landing on the same upstream connection
 * while load is steady. An idempotent request without a body whose
 * kept-alive connection turns out closed before any answer (the server's
 * own idle timeout racing it) is sent once more on a new connection; any
 * other is answered 502: RFC 9110 §9.2.2 lets a proxy retry only what is
 * idempotent.
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { type BodySink, type Exchange, httpDate } from './exchange.ts';
import { endToEndHeaders } from './hop-by-hop.ts';
import { Http1Parser, type MessageHead } from './http1-parser.ts';

export interface UpstreamOrigin {
  /** Pool key: the origin, and for mTLS the certificate generation its connections present. */
  readonly key: string;
  readonly host: string;
  readonly port: number;
  /** `host:port` as a Host header says it. */
  readonly authority: string;
  /** mTLS: options for node:tls `connect` (secure context, the peer check); plaintext when absent. */
  readonly tls?: ConnectionOptions | undefined;
}

export interface ForwardSpec {
  readonly origin: UpstreamOrigin;
  /** Origin-form path with query. */
  readonly path: string;
  /** Flat `[name, value, …]`, already free of hop-by-hop fields; framing is added here. */
  readonly headers: readonly string[];
  /** Write `Host: <authority>` first (the list holds none). */
  readonly setHost: boolean;
  /** Longest silence from the upstream: before its answer (504), or between body chunks (cut). */
  readonly timeoutMs: number;
}

/** Why a forward failed before any answer; `code` names the class (node's own code for socket errors). */
export class UpstreamFailure extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'UpstreamFailure';
    this.code = code;
  }
}

export const UPSTREAM_TIMEOUT = 'UPSTREAM_TIMEOUT';
export const UPSTREAM_MALFORMED = 'UPSTREAM_MALFORMED';

export interface UpstreamOptions {
  readonly connectTimeoutMs: number;
  /** How long an idle kept-alive connection is kept. */
  readonly keepAliveTimeoutMs: number;
  /** The most bytes a response head may hold. */
  readonly maxHeadBytes: number;
  /** Called each time an idempotent request is sent again on a fresh connection (a metric). */
  readonly onRetry?: () => void;
}

export interface Upstreams {
  /** Resolves with the status once the response is written (499 when the client went first); rejects only before it started. */
  forward(exchange: Exchange, spec: ForwardSpec): Promise<number>;
  close(): void;
}

// Idle connections kept per origin; more than this are closed as they come back.
const MAX_IDLE = 256;
// TLS session tickets kept, one per origin and certificate generation.
const MAX_SESSIONS = 1024;
const CRLF = '\r\n';
// RFC 9110 §9.2.2.
const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
const LAST_CHUNK = '0\r\n\r\n';

export function createUpstreams(options: UpstreamOptions): Upstreams {
  const idle = new Map<string, UpstreamConnection[]>();
  const sessions = new Map<string, Buffer>();
  const open = new Set<UpstreamConnection>();

  const pool: Pool = {
    release(connection) {
      let list = idle.get(connection.key);
      if (list === undefined) idle.set(connection.key, (list = []));
      if (list.length >= MAX_IDLE) {
        connection.socket.destroy();
        return;
      }
      connection.idle(options.keepAliveTimeoutMs);
      list.push(connection);
    },
    forget(connection) {
      open.delete(connection);
      const list = idle.get(connection.key);
      const at = list?.indexOf(connection) ?? -1;
      if (at !== -1) list?.splice(at, 1);
      // A retired certificate generation's key goes with its last connection.
      if (list?.length === 0) idle.delete(connection.key);
    },
    connect(origin) {
      const socket = origin.tls === undefined
        ? netConnect({ host: origin.host, port: origin.port, noDelay: true })
        : tlsConnect({ host: origin.host, port: origin.port, ...origin.tls, ...(isIP(origin.host) === 0 ? { servername: origin.host } : {}), session: sessions.get(origin.key) });
      if (origin.tls !== undefined) {
        socket.setNoDelay(true);
        // TLS 1.3 tickets: the next connection to this origin resumes instead of a full handshake.
        socket.on('session', (session: Buffer) => {
          sessions.delete(origin.key);
          sessions.set(origin.key, session);
          // Keys carry the certificate generation: rotations add keys, so the oldest go (Map order is insertion order).
          if (sessions.size > MAX_SESSIONS) sessions.delete(sessions.keys().next().value as string);
        });
      }
      const connection = new UpstreamConnection(socket, origin.key, origin.tls !== undefined, options, pool);
      open.add(connection);
      return connection;
    },
    take(key) {
      const list = idle.get(key);
      while (list !== undefined && list.length > 0) {
        const connection = list.pop() as UpstreamConnection;
        if (connection.usable()) return connection;
      }
      return undefined;
    },
  };

  return {
    forward(exchange, spec) {
      return new Promise<number>((resolve, reject) => new ForwardCall(exchange, spec, pool, resolve, reject, options.onRetry).start());
    },
    close() {
      for (const connection of open) connection.socket.destroy();
      idle.clear();
    },
  };
}

interface Pool {
  release(connection: UpstreamConnection): void;
  forget(connection: UpstreamConnection): void;
  connect(origin: UpstreamOrigin): UpstreamConnection;
  take(key: string): UpstreamConnection | undefined;
}

/** One connection to an upstream, with its response parser; serves one ForwardCall at a time. */
class UpstreamConnection {
  readonly socket: Socket;
  readonly key: string;
  readonly parser: Http1Parser;
  call: ForwardCall | undefined;
  /** It has served a request before: a close before the answer may be the server's keep-alive timeout. */
  reused = false;
  connected = false;
  error: Error | undefined;
  #alive = true;
  readonly #pool: Pool;

  constructor(socket: Socket, key: string, secure: boolean, options: UpstreamOptions, pool: Pool) {
    this.socket = socket;
    this.key = key;
    this.#pool = pool;
    this.parser = new Http1Parser(
      'response',
      {
        onHead: (head) => this.call?.onHead(head),
        onBody: (chunk) => this.call?.onBody(chunk),
      },
      { maxHeadBytes: options.maxHeadBytes },
    );
    socket.setTimeout(options.connectTimeoutMs);
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      this.connected = true;
      this.call?.onConnected();
    });
    socket.on('data', (chunk: Buffer) => {
      // Bytes nobody asked for, on an idle connection: it cannot be trusted with the next request.
      if (this.call === undefined) socket.destroy();
      else this.call.onData(chunk);
    });
    socket.on('end', () => this.call?.onEnd());
    socket.on('drain', () => this.call?.onUpstreamDrain());
    socket.on('timeout', () => {
      if (this.call === undefined) socket.destroy();
      else this.call.onTimeout(this.connected);
    });
    socket.on('error', (error: Error) => {
      this.error ??= error;
    });
    socket.once('close', () => {
      this.#alive = false;
      pool.forget(this);
      this.parser.close();
      this.call?.onClose(this.error);
    });
  }

  usable(): boolean {
    return this.#alive && !this.socket.destroyed && this.socket.readyState === 'open';
  }

  idle(keepAliveTimeoutMs: number): void {
    this.call = undefined;
    this.reused = true;
    this.socket.setTimeout(keepAliveTimeoutMs);
  }

  release(): void {
    this.#pool.release(this);
  }
}

type CallState = 'connecting' | 'sent' | 'body' | 'done';

/** One request forwarded: the head written, the body streamed, the answer passed back. */
class ForwardCall {
  readonly #exchange: Exchange;
  readonly #spec: ForwardSpec;
  readonly #pool: Pool;
  readonly #resolve: (status: number) => void;
  readonly #reject: (error: Error) => void;
  #connection: UpstreamConnection | undefined;
  #state: CallState = 'connecting';
  #head: MessageHead | undefined;
  #status = 0;
  #bodySent = false;
  #retried = false;
  /** The client speaks HTTP/1.0 and the answer is chunked: pass the payload, not the framing, and close. */
  #decode = false;
  #paused = false;
  /** Made on the first pause only: a closure per forward would cost every request an allocation. */
  #onClientDrain: (() => void) | undefined;

  readonly #onRetry: (() => void) | undefined;

  constructor(exchange: Exchange, spec: ForwardSpec, pool: Pool, resolve: (status: number) => void, reject: (error: Error) => void, onRetry?: () => void) {
    this.#onRetry = onRetry;
    this.#exchange = exchange;
    this.#spec = spec;
    this.#pool = pool;
    this.#resolve = resolve;
    this.#reject = reject;
  }

  start(): void {
    this.#exchange.onClose(() => this.#clientGone());
    if (this.#exchange.closed) return;
    this.#attach(this.#pool.take(this.#spec.origin.key) ?? this.#pool.connect(this.#spec.origin));
  }

  #attach(connection: UpstreamConnection): void {
    this.#connection = connection;
    connection.call = this;
    if (connection.connected) this.onConnected();
  }

  onConnected(): void {
    const connection = this.#connection as UpstreamConnection;
    const { socket } = connection;
    const spec = this.#spec;
    const exchange = this.#exchange;
    this.#state = 'sent';
    // The upstream's time starts once it has the whole request: an upload's pace is the client's (its own deadline).
    socket.setTimeout(exchange.hasBody ? 0 : spec.timeoutMs);
    let head = `${exchange.method} ${spec.path} HTTP/1.1${CRLF}`;
    if (spec.setHost) head += `host: ${spec.origin.authority}${CRLF}`;
    const headers = spec.headers;
    for (let i = 0; i + 1 < headers.length; i += 2) head += `${headers[i] as string}: ${headers[i + 1] as string}${CRLF}`;
    const chunked = exchange.framing === 'chunked';
    if (chunked) head += `transfer-encoding: chunked${CRLF}`;
    if (!exchange.hasBody) {
      this.#bodySent = true;
      socket.write(head + CRLF, 'latin1');
      return;
    }
    // One write for the head and whatever of the body is already in: a small POST goes as one packet.
    socket.cork();
    socket.write(head + CRLF, 'latin1');
    const sink: BodySink = chunked
      ? {
          data(chunk) {
            socket.write(`${chunk.length.toString(16)}${CRLF}`);
            socket.write(chunk);
            return socket.write(CRLF);
          },
          end: () => {
            socket.write(LAST_CHUNK);
            this.#sent();
          },
        }
      : {
          data: (chunk) => socket.write(chunk),
          end: () => this.#sent(),
        };
    exchange.readBody(sink);
    socket.uncork();
  }

  #sent(): void {
    this.#bodySent = true;
    if (this.#state === 'sent') this.#connection?.socket.setTimeout(this.#spec.timeoutMs);
  }

  onUpstreamDrain(): void {
    if (this.#state !== 'done') this.#exchange.resumeBody();
  }

  /** The parser's head callback: true reads no body (a response to HEAD). */
  onHead(head: MessageHead): boolean {
    // 1xx interim answers are not relayed (100-continue was answered to the client already); the final one follows.
    if (head.statusCode < 200) return false;
    this.#head = head;
    return this.#exchange.method === 'HEAD';
  }

  onBody(chunk: Buffer): void {
    if (this.#decode && !this.#exchange.write(chunk)) this.#pauseUpstream();
  }

  onData(chunk: Buffer): void {
    const connection = this.#connection as UpstreamConnection;
    const exchange = this.#exchange;
    // The rebuilt head and the body bytes that came with it go out together.
    exchange.cork();
    try {
      this.#parse(connection, chunk);
    } finally {
      exchange.uncork();
    }
  }

  #parse(connection: UpstreamConnection, chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length && this.#state !== 'done') {
      const rest = offset === 0 ? chunk : chunk.subarray(offset);
      let result;
      try {
        result = connection.parser.execute(rest);
      } catch (error) {
        this.#fail(new UpstreamFailure(UPSTREAM_MALFORMED, 'the upstream answered with a malformed HTTP/1.1 response', { cause: error }));
        return;
      }
      if (this.#state === 'sent') {
        const head = this.#head;
        if (head !== undefined) {
          this.#respondHead(head);
          if (result.stoppedAt === 'message') this.#complete(offset + result.consumed === chunk.length);
        }
      } else {
        if (!this.#decode && result.consumed > 0 && !this.#exchange.write(result.consumed === rest.length ? rest : rest.subarray(0, result.consumed))) this.#pauseUpstream();
        if (result.stoppedAt === 'message') this.#complete(offset + result.consumed === chunk.length);
      }
      offset += result.consumed;
    }
  }

  onEnd(): void {
    if (this.#state !== 'body') return;
    // A response read until close (no length, not chunked) ends here; any other one was cut short.
    const connection = this.#connection as UpstreamConnection;
    try {
      connection.parser.finish();
    } catch {
      this.#cutClient();
      return;
    }
    if (this.#head?.framing === 'until-close') this.#complete(false);
    else this.#cutClient();
  }

  onTimeout(connected: boolean): void {
    if (this.#state === 'done') return;
    if (!connected) {
      this.#fail(new UpstreamFailure('UPSTREAM_CONNECT_TIMEOUT', 'the upstream did not accept a connection in time'));
      return;
    }
    if (this.#state === 'sent') this.#fail(new UpstreamFailure(UPSTREAM_TIMEOUT, `the upstream did not answer within ${this.#spec.timeoutMs} ms`));
    else this.#cutClient();
  }

  onClose(error: Error | undefined): void {
    if (this.#state === 'done') return;
    if (this.#state === 'body') {
      // Closed without 'end' first (a reset): onEnd completes a response read until close, or cuts the client.
      this.onEnd();
      return;
    }
    const connection = this.#connection as UpstreamConnection;
    // A kept-alive connection the server had just closed: an idempotent request with no body is sent again, once
    // (RFC 9110 §9.2.2: a proxy never retries a non-idempotent one by itself).
    if (this.#state === 'sent' && connection.reused && !this.#exchange.hasBody && IDEMPOTENT.has(this.#exchange.method) && !this.#retried && !this.#exchange.closed) {
      this.#retried = true;
      this.#onRetry?.();
      this.#state = 'connecting';
      this.#attach(this.#pool.connect(this.#spec.origin));
      return;
    }
    const code = error !== undefined && 'code' in error && typeof error.code === 'string' ? error.code : 'ECONNRESET';
    this.#fail(new UpstreamFailure(code, 'the upstream closed the connection before answering', { cause: error }));
  }

  #respondHead(head: MessageHead): void {
    const exchange = this.#exchange;
    this.#state = 'body';
    this.#status = head.statusCode;
    if (!this.#bodySent) this.#connection?.socket.setTimeout(this.#spec.timeoutMs);
    let framing: 'as-is' | 'chunked' | 'close' = 'as-is';
    if (exchange.method !== 'HEAD') {
      if (head.framing === 'chunked') {
        this.#decode = exchange.httpVersion === '1.0';
        framing = this.#decode ? 'close' : 'chunked';
      } else if (head.framing === 'until-close') framing = 'close';
    }
    const headers = endToEndHeaders(head.rawHeaders);
    // As node:http did for every answer it passed on: one without a Date gets the time it was received (RFC 7231 §7.1.1.2).
    if (!hasDate(headers)) headers.push('date', httpDate());
    exchange.writeHead(head.statusCode, headers, framing);
  }

  #pauseUpstream(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#connection?.socket.pause();
    this.#onClientDrain ??= () => this.#resumeUpstream();
    this.#exchange.onDrain(this.#onClientDrain);
  }

  #resumeUpstream(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (this.#onClientDrain !== undefined) this.#exchange.offDrain(this.#onClientDrain);
    this.#connection?.socket.resume();
  }

  /** The answer is through. The connection goes back to the pool first, so a pipelined next request can take it. */
  #complete(nothingAfter: boolean): void {
    const connection = this.#connection as UpstreamConnection;
    this.#finish();
    if (nothingAfter && this.#bodySent && this.#head?.keepAlive === true && connection.usable()) connection.release();
    else connection.socket.destroy();
    this.#exchange.end();
    this.#resolve(this.#status);
  }

  #fail(error: UpstreamFailure): void {
    const started = this.#state === 'body';
    this.#finish();
    this.#connection?.socket.destroy();
    if (started) {
      this.#exchange.destroy();
      this.#resolve(this.#status);
    } else this.#reject(error);
  }

  #cutClient(): void {
    this.#finish();
    this.#connection?.socket.destroy();
    this.#exchange.destroy();
    this.#resolve(this.#status);
  }

  #clientGone(): void {
    if (this.#state === 'done' || this.#exchange.finished) return;
    this.#finish();
    this.#connection?.socket.destroy();
    this.#resolve(this.#status === 0 ? 499 : this.#status);
  }

  #finish(): void {
    this.#state = 'done';
    const connection = this.#connection;
    // Paused for a slow client, then complete: the connection must not go back to the pool unread, or the next answer on it is never seen.
    this.#resumeUpstream();
    if (connection !== undefined && connection.call === this) connection.call = undefined;
  }
}

function hasDate(headers: readonly string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    if (name.length === 4 && name.toLowerCase() === 'date') return true;
  }
  return false;
}
