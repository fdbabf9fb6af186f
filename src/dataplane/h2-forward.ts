/**
 * Forwarding an HTTP/2 request over HTTP/2 (a request keeps its protocol on
 * every hop: an app that is sent HTTP/2 speaks h2c, as gRPC servers do): one
 * node:http2 client session per origin (and, for mTLS, per certificate
 * generation, ALPN `h2`), streams multiplexed on it.
 *
 * The head is built anew: `:method`, `:path` and `:authority` from the
 * forward spec, the caller's end-to-end fields (already filtered by the
 * sidecar), and `te: trailers` where the caller sent it (gRPC needs it;
 * RFC 9113 §8.2.2 allows no other `te`). Bodies stream both ways with
 * backpressure (stream piping, flow-controlled by nghttp2 on each side).
 * The answer's head is passed on without connection-specific fields; its
 * trailers (gRPC's `grpc-status`) are passed on when the answer is gRPC or
 * the caller asked for trailers.
 *
 * | state | meaning | next |
 * | --- | --- | --- |
 * | `waiting` | the request sent (its body may still stream); no answer head yet | relaying, done |
 * | `relaying` | the answer head passed on, its body and trailers following | done |
 * | `done` | over: answered whole, failed, or the client went away | — |
 */
import assert from 'node:assert/strict';
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  constants,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from 'node:http2';
import type { Readable, Writable } from 'node:stream';
import {
  connectionFailure,
  type ForwardSpec,
  UPSTREAM_TIMEOUT,
  UPSTREAM_UNREACHABLE,
  UpstreamFailure,
  connectOrigin,
  type UpstreamOrigin,
} from './forward-call.ts';
import type { H2Stream } from './h2-stream.ts';

export interface H2UpstreamOptions {
  readonly connectTimeoutMs: number;
  /** Idle sessions (no open stream) close after this. */
  readonly idleTimeoutMs: number;
  /** The largest answer head accepted, in bytes of header list (RFC 9113 §6.5.2). */
  readonly maxHeaderListSize: number;
}

export interface H2Upstreams {
  /** Resolves with the status once the answer is through (499 when the client went first); rejects only before it started. */
  forward(stream: H2Stream, spec: ForwardSpec): Promise<number>;
  close(): void;
}

// Connection-specific fields (RFC 9113 §8.2.2) and the sidecar's framing: never sent on, in either direction.
const DROPPED: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'host',
  'http2-settings',
]);

/** A client session and the streams open on it (the idle timeout closes it only when there are none). */
interface UpstreamSession {
  readonly session: ClientHttp2Session;
  streams: number;
}

export function createH2Upstreams(options: H2UpstreamOptions): H2Upstreams {
  const sessions = new Map<string, UpstreamSession>();

  const sessionFor = (origin: UpstreamOrigin): UpstreamSession => {
    const held = sessions.get(origin.key);
    if (held !== undefined && !held.session.closed && !held.session.destroyed) return held;
    const session = connect(`${origin.tls === undefined ? 'http' : 'https'}://${origin.authority}`, {
      settings: { enablePush: false, maxHeaderListSize: options.maxHeaderListSize },
      createConnection: () => connectOrigin(origin, { ALPNProtocols: ['h2'] }),
    });
    const record: UpstreamSession = { session, streams: 0 };
    sessions.set(origin.key, record);
    const forget = (): void => {
      if (sessions.get(origin.key) === record) sessions.delete(origin.key);
    };
    session.on('error', forget);
    session.once('close', forget);
    session.once('goaway', forget);
    session.setTimeout(options.idleTimeoutMs, () => {
      if (record.streams === 0) session.close();
    });
    return record;
  };

  return {
    forward(stream, spec) {
      return new Promise<number>((resolve, reject) =>
        new H2Call(stream, spec, sessionFor(spec.origin), resolve, reject).start(),
      );
    },
    close() {
      for (const { session } of sessions.values()) session.destroy();
      sessions.clear();
    },
  };
}

type State = 'waiting' | 'relaying' | 'done';

class H2Call {
  readonly #stream: H2Stream;
  readonly #spec: ForwardSpec;
  readonly #session: UpstreamSession;
  readonly #resolve: (status: number) => void;
  readonly #reject: (error: Error) => void;
  #state: State = 'waiting';
  #upstream: ClientHttp2Stream | undefined;
  #trailers: OutgoingHttpHeaders | undefined;
  #status = 0;

  constructor(
    stream: H2Stream,
    spec: ForwardSpec,
    session: UpstreamSession,
    resolve: (status: number) => void,
    reject: (error: Error) => void,
  ) {
    this.#stream = stream;
    this.#spec = spec;
    this.#session = session;
    this.#resolve = resolve;
    this.#reject = reject;
  }

  #enter(next: State, ...from: State[]): void {
    assert.ok(from.includes(this.#state), `h2 call: ${this.#state} → ${next}`);
    this.#state = next;
  }

  start(): void {
    const { raw } = this.#stream;
    const spec = this.#spec;
    if (this.#stream.closed) return this.#clientGone();
    // One 'close' listener per stream (./h2-stream.ts keeps the list): fewer closures per call.
    this.#stream.onClose(() => this.#clientGone());
    // The head as a flat list: node:http2 takes it without the null-prototype copy an object head costs per call
    // (prepareRequestHeadersObject was 3% of the inbound sidecar's busy time in scenario 8's profile).
    const head: string[] = [
      ':method',
      this.#stream.method,
      ':path',
      spec.path,
      ':authority',
      spec.host,
      ':scheme',
      spec.origin.tls === undefined ? 'http' : 'https',
    ];
    for (let i = 0; i + 1 < spec.headers.length; i += 2) {
      const name = (spec.headers[i] as string).toLowerCase();
      if (DROPPED.has(name) || name === 'content-length' || name.charCodeAt(0) === 0x3a) continue;
      head.push(name, spec.headers[i + 1] as string);
    }
    // gRPC needs `te: trailers`, the one `te` HTTP/2 allows; nothing else of the caller's te goes on.
    if (this.#stream.headers.te === 'trailers') head.push('te', 'trailers');
    // In HTTP/2 the DATA frames delimit the body; a content-length the caller sent was held to them by nghttp2
    // (a mismatch is a malformed request, RFC 9113 §8.1.1), so it passes on as the same number.
    const length = this.#stream.headers['content-length'];
    if (typeof length === 'string' && /^[0-9]{1,15}$/.test(length)) head.push('content-length', length);
    let upstream: ClientHttp2Stream;
    try {
      upstream = this.#session.session.request(head, { endStream: !this.#stream.hasBody });
    } catch (error) {
      this.#fail(
        connectionFailure(
          error instanceof Error ? error : undefined,
          'the upstream HTTP/2 session refused a new stream',
        ),
      );
      return;
    }
    this.#upstream = upstream;
    this.#session.streams++;
    // Before the answer: the upstream's time to answer (504); after it, the longest silence between body chunks (cut).
    upstream.setTimeout(spec.timeoutMs, () => this.#onTimeout());
    upstream.on('response', (headers: IncomingHttpHeaders, _flags: number, rawHeaders: readonly string[]) =>
      this.#onResponse(headers, rawHeaders),
    );
    upstream.on('trailers', (trailers: IncomingHttpHeaders, _flags: number, rawHeaders: readonly string[]) => {
      this.#trailers = endToEnd(rawHeaders);
      const status = Number(trailers['grpc-status']);
      if (Number.isInteger(status)) this.#stream.grpcStatus = status;
    });
    upstream.on('error', (error: Error) => this.#onError(error));
    upstream.once('close', () => {
      this.#session.streams--;
      this.#onUpstreamClose();
    });
    if (this.#stream.hasBody) relay(raw, upstream);
  }

  #onResponse(headers: IncomingHttpHeaders, rawHeaders: readonly string[]): void {
    const status = Number(headers[':status']);
    // 1xx interim answers are not relayed (node reports 100-continue as 'continue', not here).
    if (this.#state !== 'waiting' || status < 200) return;
    this.#enter('relaying', 'waiting');
    this.#status = status;
    const { raw } = this.#stream;
    const grpc = typeof headers['content-type'] === 'string' && headers['content-type'].startsWith('application/grpc');
    const waitForTrailers = grpc || this.#stream.headers.te === 'trailers';
    const head = endToEnd(rawHeaders);
    head[':status'] = status;
    // A trailers-only gRPC answer carries its status in the head.
    const trailersOnly = Number(headers['grpc-status']);
    if (grpc && Number.isInteger(trailersOnly)) this.#stream.grpcStatus = trailersOnly;
    this.#stream.answered(status);
    raw.respond(head, { waitForTrailers });
    if (waitForTrailers) raw.once('wantTrailers', () => raw.sendTrailers(this.#trailers ?? {}));
    const upstream = this.#upstream as ClientHttp2Stream;
    relay(upstream, raw, () => this.#complete());
  }

  #complete(): void {
    if (this.#state !== 'relaying') return;
    this.#state = 'done';
    this.#stream.done();
    this.#resolve(this.#status);
  }

  #onTimeout(): void {
    if (this.#state !== 'waiting') {
      if (this.#state === 'relaying') this.#cut();
      return;
    }
    // As on HTTP/1.1 (./forward-call.ts): no connection in time is unreachable, no answer in time a timeout.
    if (this.#session.session.connecting)
      this.#fail(
        new UpstreamFailure(UPSTREAM_UNREACHABLE, 'the upstream did not accept a connection in time', {
          reason: 'connect-timeout',
        }),
      );
    else
      this.#fail(
        new UpstreamFailure(UPSTREAM_TIMEOUT, `the upstream did not answer within ${this.#spec.timeoutMs} ms`),
      );
  }

  #onError(error: Error): void {
    if (this.#state === 'waiting') {
      this.#fail(connectionFailure(error, 'the upstream refused or reset the HTTP/2 stream before answering'));
    } else if (this.#state === 'relaying') this.#cut();
  }

  #onUpstreamClose(): void {
    if (this.#state === 'waiting')
      this.#fail(connectionFailure(undefined, 'the upstream closed the HTTP/2 stream before answering'));
    // An answer whose stream closed without its end (a reset mid-body) is cut for the client too.
    else if (this.#state === 'relaying' && !(this.#upstream as ClientHttp2Stream).readableEnded) this.#cut();
  }

  #fail(error: UpstreamFailure): void {
    if (this.#state === 'done') return;
    this.#state = 'done';
    this.#upstream?.close(constants.NGHTTP2_CANCEL);
    this.#reject(error);
  }

  #cut(): void {
    if (this.#state === 'done') return;
    this.#state = 'done';
    this.#upstream?.close(constants.NGHTTP2_CANCEL);
    this.#stream.destroy();
    this.#resolve(this.#status);
  }

  #clientGone(): void {
    if (this.#state === 'done' || this.#stream.finished) return;
    this.#state = 'done';
    // RFC 9113 §8.7: the caller cancelled; the upstream is told the same way.
    this.#upstream?.close(constants.NGHTTP2_CANCEL);
    this.#resolve(this.#status === 0 ? 499 : this.#status);
  }
}

/**
 * A head or trailers, from the field list as received (lower-case names, RFC 9113 §8.2.1), without pseudo-fields
 * and connection-specific fields; a repeated field keeps every value, in order.
 */
function endToEnd(rawHeaders: readonly string[]): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (name.charCodeAt(0) === 0x3a || DROPPED.has(name)) continue;
    const value = rawHeaders[i + 1] as string;
    const seen = out[name];
    if (Array.isArray(seen)) seen.push(value);
    else out[name] = seen === undefined ? value : [String(seen), value];
  }
  return out;
}

/**
 * A body from one stream to the other with backpressure, as `pipe` does it but with two listeners instead of
 * pipe's seven and its cleanup (listener bookkeeping was about 6% of each sidecar's busy time in scenario 8's
 * profile). A destination that is closed meanwhile is the call's to notice (its 'close'), not the relay's; what
 * still arrives for it is read and dropped, so a refused call's body never holds the session's flow-control
 * window (./h2-stream.ts resumes a paused one when it answers).
 */
function relay(from: Readable, to: Writable, ended?: () => void): void {
  let waiting = false;
  from.on('data', (chunk: Buffer) => {
    if (to.destroyed) return;
    if (!to.write(chunk) && !waiting) {
      waiting = true;
      from.pause();
      to.once('drain', () => {
        waiting = false;
        from.resume();
      });
    }
  });
  from.once('end', () => {
    to.end();
    ended?.();
  });
}
