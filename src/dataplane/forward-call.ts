/**
 * One request forwarded to an upstream: the head written anew, the body
 * streamed, the answer passed back.
 *
 * The request head is written by ./wire.ts: request line, `Host`, the
 * caller's end-to-end fields, and the framing this data plane's parser
 * read — `Content-Length: n` for a length-framed body, `Transfer-Encoding:
 * chunked` for a chunked one, which is framed again (chunk extensions and
 * trailers dropped) so the upstream reads exactly the framing baton
 * checked. The answer is read by the same strict parser; its head is
 * rebuilt the same way, a length- or close-framed body passes through
 * byte for byte, and a chunked one is framed again too. Backpressure runs
 * both ways: a slow reader pauses the socket that feeds it.
 *
 * An idempotent request without a body whose kept-alive connection turns
 * out closed before any answer (the server's own idle timeout racing it)
 * is sent once more on a new connection; any other is answered 502: RFC
 * 9110 §9.2.2 lets a proxy retry only what is idempotent.
 *
 * | state | meaning | timeout | next |
 * | --- | --- | --- | --- |
 * | `connecting` | waiting for a connection | connect | sending, waiting, done |
 * | `sending` | head written, the request body still streaming; no answer yet | none (the upload's pace is the client's, under its own deadline) | waiting, relaying-early, done |
 * | `waiting` | the whole request sent; no answer head yet | the upstream's: 504 | relaying, connecting (one retry), done |
 * | `relaying` | the answer head passed on, its body following | between body bytes: cut | done |
 * | `relaying-early` | answered before the request body was all sent: the connection is never reused | between body bytes: cut | done |
 * | `done` | over; the connection released or closed | — | — |
 */
import assert from 'node:assert/strict';
import { BatonError, type BatonErrorOptions } from '../core/errors.ts';
import type { BodySink, HttpStream } from './stream.ts';
import type { MessageHead } from './http1-parser.ts';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import type { ConnectionEvents, UpstreamConnection } from './upstream-connection.ts';
import {
  CHUNKED,
  chunkSizeLine,
  CRLF,
  endToEndHeaders,
  type Framing,
  httpDate,
  LAST_CHUNK,
  lengthOf,
  NO_BODY,
  requestHead,
  UNTIL_CLOSE,
} from './wire.ts';

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

/**
 * A new socket to an origin, for the HTTP/1.1 pool and the HTTP/2 sessions alike: TCP without Nagle in
 * plaintext; in mTLS the origin's options, SNI when its host is a name, and the caller's `tls` (ALPN, a
 * session to resume).
 */
export function connectOrigin(origin: UpstreamOrigin, tls: ConnectionOptions = {}): Socket {
  if (origin.tls === undefined) return netConnect({ host: origin.host, port: origin.port, noDelay: true });
  return tlsConnect({
    host: origin.host,
    port: origin.port,
    ...origin.tls,
    ...tls,
    ...(isIP(origin.host) === 0 ? { servername: origin.host } : {}),
  });
}

/** What a ForwardCall needs of the pool. */
export interface Pool {
  release(connection: UpstreamConnection): void;
  connect(origin: UpstreamOrigin): UpstreamConnection;
  take(key: string): UpstreamConnection | undefined;
  readonly onRetry: (() => void) | undefined;
}

export interface ForwardSpec {
  readonly origin: UpstreamOrigin;
  /** Origin-form path with query. */
  readonly path: string;
  /** The Host to write (first, RFC 9112 §3.2): the client's validated one inbound, the upstream's authority outbound. */
  readonly host: string;
  /** Flat `[name, value, …]`, already free of hop-by-hop and framing fields (./wire.ts `endToEndHeaders`); framing is written here. */
  readonly headers: readonly string[];
  /** Longest silence from the upstream: before its answer (504), or between body chunks (cut). */
  readonly timeoutMs: number;
}

// The codes (docs/errors.md) a forward's failure is classified into, once, here.
/** No answer within the upstream's timeout. */
export const UPSTREAM_TIMEOUT = 'BATON_UPSTREAM_TIMEOUT';
/** No connection, or one closed before any answer: node's code (`ECONNREFUSED`, …) or `connect-timeout` is the reason. */
export const UPSTREAM_UNREACHABLE = 'BATON_UPSTREAM_UNREACHABLE';
/** The TLS handshake failed: OpenSSL's code as node reports it (`CERT_HAS_EXPIRED`, …) is the reason. */
export const UPSTREAM_TLS_FAILED = 'BATON_UPSTREAM_TLS_FAILED';
/** The upstream's answer did not frame as one unambiguous HTTP/1.1 response; the parser's reason is the reason. */
export const UPSTREAM_FRAMING = 'BATON_UPSTREAM_FRAMING';

// OpenSSL verification and handshake failures as node reports them (CERT_HAS_EXPIRED, UNABLE_TO_VERIFY_LEAF_SIGNATURE, ERR_SSL_…).
const TLS_CODE = /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|ECONNRESET_TLS)/;

/** Why a forward failed before any answer: one of the codes above, or the code of the TLS peer check that refused the upstream. */
export class UpstreamFailure extends BatonError {
  constructor(code: string, message: string, options?: BatonErrorOptions) {
    super(code, message, options);
    this.name = 'UpstreamFailure';
  }
}

/** A connection's error, classified: the peer check's own error keeps its code; node's is TLS or unreachable, its code kept as the reason. */
export function connectionFailure(
  error: Error | undefined,
  message = 'the upstream closed the connection before answering',
): UpstreamFailure {
  if (error instanceof BatonError)
    return new UpstreamFailure(error.code, "the upstream's certificate failed the peer check", {
      cause: error,
      reason: error.reason,
    });
  const nodeCode = error !== undefined && 'code' in error && typeof error.code === 'string' ? error.code : 'ECONNRESET';
  return new UpstreamFailure(TLS_CODE.test(nodeCode) ? UPSTREAM_TLS_FAILED : UPSTREAM_UNREACHABLE, message, {
    cause: error,
    reason: nodeCode,
  });
}

type State = 'connecting' | 'sending' | 'waiting' | 'relaying' | 'relaying-early' | 'done';
/** How answer body bytes reach the client: as they came, framed again in chunks, or unframed (an HTTP/1.0 client). */
type Relay = 'raw' | 'rechunk' | 'decode';

// RFC 9110 §9.2.2.
const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

export class ForwardCall implements ConnectionEvents {
  readonly #stream: HttpStream;
  readonly #spec: ForwardSpec;
  readonly #pool: Pool;
  readonly #resolve: (status: number) => void;
  readonly #reject: (error: Error) => void;
  #state: State = 'connecting';
  #connection: UpstreamConnection | undefined;
  #head: MessageHead | undefined;
  #status = 0;
  #relay: Relay = 'raw';
  #retried = false;
  /** Reading from the upstream stopped until the client drains (flow, not lifecycle). */
  #paused = false;
  /** Made on the first pause only: a closure per forward would cost every request an allocation. */
  #onClientDrain: (() => void) | undefined;

  constructor(
    stream: HttpStream,
    spec: ForwardSpec,
    pool: Pool,
    resolve: (status: number) => void,
    reject: (error: Error) => void,
  ) {
    this.#stream = stream;
    this.#spec = spec;
    this.#pool = pool;
    this.#resolve = resolve;
    this.#reject = reject;
  }

  start(): void {
    this.#stream.onClose(() => this.#clientGone());
    if (this.#stream.closed) return;
    this.#attach(this.#pool.take(this.#spec.origin.key) ?? this.#pool.connect(this.#spec.origin));
  }

  #enter(next: State, ...from: State[]): void {
    assert.ok(from.includes(this.#state), `forward call: ${this.#state} → ${next}`);
    this.#state = next;
  }

  #attach(connection: UpstreamConnection): void {
    this.#connection = connection;
    connection.attach(this);
    if (connection.connected) this.onConnected();
  }

  onConnected(): void {
    if (this.#state !== 'connecting') return;
    const { socket } = this.#connection as UpstreamConnection;
    const spec = this.#spec;
    const stream = this.#stream;
    const framing = requestFraming(stream.head);
    const head = requestHead(stream.method, spec.path, spec.host, spec.headers, framing);
    if (!stream.hasBody) {
      this.#enter('waiting', 'connecting');
      socket.setTimeout(spec.timeoutMs);
      socket.write(head, 'latin1');
      return;
    }
    this.#enter('sending', 'connecting');
    // The upstream's time starts once it has the whole request: an upload's pace is the client's (its own deadline).
    socket.setTimeout(0);
    // One write for the head and whatever of the body is already in: a small POST goes as one packet.
    socket.cork();
    socket.write(head, 'latin1');
    const sink: BodySink =
      framing.kind === 'chunked'
        ? {
            data(chunk) {
              socket.write(chunkSizeLine(chunk.length), 'latin1');
              socket.write(chunk);
              return socket.write(CRLF, 'latin1');
            },
            end: () => {
              socket.write(LAST_CHUNK, 'latin1');
              this.#sent();
            },
          }
        : {
            data: (chunk) => socket.write(chunk),
            end: () => this.#sent(),
          };
    stream.readBody(sink);
    socket.uncork();
  }

  /** The last byte of the request body is written. */
  #sent(): void {
    if (this.#state !== 'sending') return;
    this.#enter('waiting', 'sending');
    this.#connection?.socket.setTimeout(this.#spec.timeoutMs);
  }

  onUpstreamDrain(): void {
    if (this.#state === 'sending' || this.#state === 'relaying-early') this.#stream.resumeBody();
  }

  onHead(head: MessageHead): boolean {
    // 1xx interim answers are not relayed (100-continue was answered to the client already); the final one follows.
    if (head.statusCode < 200) return false;
    this.#head = head;
    return this.#stream.method === 'HEAD';
  }

  onBody(chunk: Buffer): void {
    if (this.#relay === 'raw') return;
    const stream = this.#stream;
    let room: boolean;
    if (this.#relay === 'rechunk') {
      stream.write(chunkSizeLine(chunk.length));
      stream.write(chunk);
      room = stream.write(CRLF);
    } else room = stream.write(chunk);
    if (!room) this.#pauseUpstream();
  }

  onData(chunk: Buffer): void {
    const stream = this.#stream;
    // The rebuilt head and the body bytes that came with it go out together.
    stream.cork();
    try {
      this.#parse(chunk);
    } finally {
      stream.uncork();
    }
  }

  #parse(chunk: Buffer): void {
    const { parser } = this.#connection as UpstreamConnection;
    let offset = 0;
    while (offset < chunk.length && this.#state !== 'done') {
      const rest = offset === 0 ? chunk : chunk.subarray(offset);
      let result;
      try {
        result = parser.execute(rest);
      } catch (error) {
        const reason = error instanceof BatonError ? error.reason : undefined;
        this.#fail(
          new UpstreamFailure(
            UPSTREAM_FRAMING,
            'the upstream answered with a malformed or ambiguous HTTP/1.1 response',
            { cause: error, reason: reason ?? 'unreadable' },
          ),
        );
        return;
      }
      const state = this.#state;
      if (state === 'sending' || state === 'waiting') {
        if (this.#head !== undefined) this.#respondHead(this.#head);
      } else if (this.#relay === 'raw' && result.consumed > 0) {
        if (!this.#stream.write(result.consumed === rest.length ? rest : rest.subarray(0, result.consumed)))
          this.#pauseUpstream();
      }
      if (result.stoppedAt === 'message' && (this.#state === 'relaying' || this.#state === 'relaying-early'))
        this.#complete(offset + result.consumed === chunk.length);
      offset += result.consumed;
    }
  }

  onEnd(): void {
    if (this.#state !== 'relaying' && this.#state !== 'relaying-early') return;
    // A response read until close (no length, not chunked) ends here; any other one was cut short.
    try {
      this.#connection?.parser.finish();
    } catch {
      this.#cutClient();
      return;
    }
    if (this.#head?.framing === 'until-close') this.#complete(false);
    else this.#cutClient();
  }

  onTimeout(connected: boolean): void {
    const state = this.#state;
    if (state === 'done') return;
    if (!connected)
      this.#fail(
        new UpstreamFailure(UPSTREAM_UNREACHABLE, 'the upstream did not accept a connection in time', {
          reason: 'connect-timeout',
        }),
      );
    else if (state === 'relaying' || state === 'relaying-early') this.#cutClient();
    else
      this.#fail(
        new UpstreamFailure(UPSTREAM_TIMEOUT, `the upstream did not answer within ${this.#spec.timeoutMs} ms`),
      );
  }

  onClose(error: Error | undefined): void {
    const state = this.#state;
    if (state === 'done') return;
    if (state === 'relaying' || state === 'relaying-early') {
      // Closed without 'end' first (a reset): onEnd completes a response read until close, or cuts the client.
      this.onEnd();
      return;
    }
    const stream = this.#stream;
    // A kept-alive connection the server had just closed: an idempotent request with no body is sent again, once
    // (RFC 9110 §9.2.2: a proxy never retries a non-idempotent one by itself).
    if (
      state === 'waiting' &&
      this.#connection?.reused === true &&
      !stream.hasBody &&
      IDEMPOTENT.has(stream.method) &&
      !this.#retried &&
      !stream.closed
    ) {
      this.#retried = true;
      this.#pool.onRetry?.();
      this.#enter('connecting', 'waiting');
      this.#attach(this.#pool.connect(this.#spec.origin));
      return;
    }
    this.#fail(connectionFailure(error));
  }

  #respondHead(head: MessageHead): void {
    const stream = this.#stream;
    const early = this.#state === 'sending';
    this.#enter(early ? 'relaying-early' : 'relaying', 'sending', 'waiting');
    this.#status = head.statusCode;
    if (early) this.#connection?.socket.setTimeout(this.#spec.timeoutMs);
    const { framing, relay } = answerFraming(head, stream.method === 'HEAD', stream.httpVersion === '1.0');
    this.#relay = relay;
    const fields = endToEndHeaders(head, 'response');
    // As node:http did for every answer it passed on: one without a Date gets the time it was received (RFC 9110 §6.6.1).
    if (!hasDate(fields)) fields.push('date', httpDate());
    stream.writeHead(head.statusCode, fields, framing);
  }

  #pauseUpstream(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#connection?.socket.pause();
    this.#onClientDrain ??= () => this.#resumeUpstream();
    this.#stream.onDrain(this.#onClientDrain);
  }

  #resumeUpstream(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (this.#onClientDrain !== undefined) this.#stream.offDrain(this.#onClientDrain);
    this.#connection?.socket.resume();
  }

  /**
   * The answer is through. The connection goes back to the pool only when nothing about its framing is in doubt:
   * the whole request was sent before the answer began, the answer ended at the last byte read, and the server
   * keeps the connection. It goes back first, so a pipelined next request can take it.
   */
  #complete(nothingAfter: boolean): void {
    const connection = this.#connection as UpstreamConnection;
    const reusable =
      this.#state === 'relaying' && nothingAfter && this.#head?.keepAlive === true && connection.usable();
    if (this.#relay === 'rechunk') this.#stream.write(LAST_CHUNK);
    this.#finish();
    if (reusable) this.#pool.release(connection);
    else connection.socket.destroy();
    this.#stream.end();
    this.#resolve(this.#status);
  }

  #fail(error: UpstreamFailure): void {
    const started = this.#state === 'relaying' || this.#state === 'relaying-early';
    this.#finish();
    this.#connection?.socket.destroy();
    if (started) {
      this.#stream.destroy();
      this.#resolve(this.#status);
    } else this.#reject(error);
  }

  #cutClient(): void {
    this.#finish();
    this.#connection?.socket.destroy();
    this.#stream.destroy();
    this.#resolve(this.#status);
  }

  #clientGone(): void {
    if (this.#state === 'done' || this.#stream.finished) return;
    this.#finish();
    this.#connection?.socket.destroy();
    this.#resolve(this.#status === 0 ? 499 : this.#status);
  }

  #finish(): void {
    this.#state = 'done';
    // Paused for a slow client, then complete: the connection must not go back to the pool unread, or the next answer on it is never seen.
    this.#resumeUpstream();
    this.#connection?.detach(this);
  }
}

/** How a request body is delimited upstream: as the parser read it, never as a field that survived a filter said. */
function requestFraming(head: MessageHead): Framing {
  if (head.framing === 'chunked') return CHUNKED;
  return head.contentLength === undefined ? NO_BODY : lengthOf(head.contentLength);
}

/** How an answer's body is delimited to the client, and how its bytes are relayed. */
function answerFraming(head: MessageHead, toHead: boolean, http10Client: boolean): { framing: Framing; relay: Relay } {
  const { statusCode: status, contentLength } = head;
  // RFC 9110 §9.3.2, §15.4.5: a HEAD answer or a 304 carries no body; a Content-Length there describes the
  // representation, so it is kept. A 204 has none and may say none (§8.6).
  if (toHead || status === 304)
    return {
      framing:
        contentLength !== undefined
          ? lengthOf(contentLength)
          : head.framing === 'chunked' && toHead
            ? CHUNKED
            : NO_BODY,
      relay: 'raw',
    };
  if (status === 204) return { framing: NO_BODY, relay: 'raw' };
  switch (head.framing) {
    case 'chunked':
      return http10Client ? { framing: UNTIL_CLOSE, relay: 'decode' } : { framing: CHUNKED, relay: 'rechunk' };
    case 'until-close':
      return { framing: UNTIL_CLOSE, relay: 'raw' };
    default:
      return { framing: contentLength === undefined ? NO_BODY : lengthOf(contentLength), relay: 'raw' };
  }
}

function hasDate(headers: readonly string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    if (name.length === 4 && name.toLowerCase() === 'date') return true;
  }
  return false;
}
