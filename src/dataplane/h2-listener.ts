/**
 * HTTP/2 on a data-plane port: a node:http2 server that never listens
 * itself. The port's listener (./server.ts) hands it the sockets that speak
 * HTTP/2 — h2c with prior knowledge (the connection preface, RFC 9113
 * §3.3, seen by ./client-connection.ts before any HTTP/1.1 parsing) and h2
 * over TLS (ALPN `h2`) — and each stream becomes an H2Stream for the same
 * handler the HTTP/1.1 requests go to. nghttp2 does all framing.
 *
 * Limits (RFC 9113 §10.5, and the attacks named after them), each a node
 * option backed by nghttp2:
 *
 * | limit | against |
 * | --- | --- |
 * | `maxConcurrentStreams` (SETTINGS) | one session holding every in-flight slot |
 * | `maxHeaderListSize` (SETTINGS) and `maxHeaderListPairs` | oversized and many-field heads; a CONTINUATION flood (CVE-2024-27316) is cut by nghttp2 |
 * | `streamResetBurst` / `streamResetRate` | rapid reset (CVE-2023-44487): streams opened and reset faster than this end the session |
 * | `maxSessionRejectedStreams`, `maxSessionInvalidFrames` | a peer that keeps sending what is refused |
 * | `maxOutstandingPings`, `maxSettings` | PING and SETTINGS floods |
 * | `maxSessionMemory` | everything else a session could make the process hold |
 * | session idle timeout | a session with nothing in flight |
 *
 * A session past a limit is ended with GOAWAY by nghttp2; its socket is
 * still one the port's socket guard counts and ends on shutdown.
 */
import {
  constants,
  createServer,
  type Http2Server,
  type Http2Session,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import type { Socket } from 'node:net';
import type { ConnectionRefusal, RefusalAnswer } from './client-connection.ts';
import { H2Stream, headProblem } from './h2-stream.ts';
import type { RequestStream } from './stream.ts';

export interface H2Limits {
  readonly maxConcurrentStreams: number;
  /** Bytes of a decoded header list (names, values and 32 bytes each, RFC 9113 §6.5.2). */
  readonly maxHeaderListSize: number;
  /** Idle sessions (no open stream, no frame) close after this. */
  readonly idleTimeoutMs: number;
  /** Rapid reset: resets allowed in a burst, and per second after it. */
  readonly resetBurst: number;
  readonly resetRate: number;
  /** The most memory one session may hold, in megabytes (node's `maxSessionMemory`). */
  readonly maxSessionMemoryMb: number;
}

/** What the listener needs besides its limits: the problem document a refused stream gets (./client-connection.ts). */
export interface H2ListenerOptions extends H2Limits {
  readonly refusal: (refusal: ConnectionRefusal) => RefusalAnswer;
}

export interface H2Listener {
  /** Takes over a socket whose peer speaks HTTP/2 (its first bytes unread or unshifted back). */
  accept(socket: Socket, tunnel?: string): void;
  sessions(): number;
  /** Shutdown: GOAWAY on every session; streams in flight finish. */
  drain(): void;
  closeAll(): void;
}

export function createH2Listener(handler: (stream: RequestStream) => void, limits: H2ListenerOptions): H2Listener {
  const server: Http2Server = createServer({
    settings: {
      maxConcurrentStreams: limits.maxConcurrentStreams,
      maxHeaderListSize: limits.maxHeaderListSize,
      enablePush: false,
    },
    maxHeaderListPairs: 256,
    maxSessionMemory: limits.maxSessionMemoryMb,
    maxOutstandingPings: 10,
    maxSettings: 32,
    maxSessionInvalidFrames: 100,
    maxSessionRejectedStreams: 100,
    streamResetBurst: limits.resetBurst,
    streamResetRate: limits.resetRate,
  });
  const sessions = new Set<Http2Session>();
  // The socket and tunnel of the session being created: node makes it synchronously inside the 'connection' emit.
  let accepting: { socket: Socket; tunnel: string | undefined } | undefined;
  /** Per session: where it came from, and its streams handed to the handler and not yet closed. */
  const origins = new WeakMap<
    Http2Session,
    { readonly socket: Socket; readonly tunnel: string | undefined; open: number }
  >();
  let draining = false;
  // Streams waiting for the end of the read that brought them (see the rapid-reset note below), started together.
  let pending: H2Stream[] = [];
  const startPending = (): void => {
    const started = pending;
    pending = [];
    for (const stream of started) {
      if (stream.closed) continue;
      try {
        handler(stream);
      } catch {
        stream.destroy();
      }
    }
  };

  server.on('session', (session: Http2Session) => {
    const origin = accepting === undefined ? undefined : { ...accepting, open: 0 };
    if (origin !== undefined) origins.set(session, origin);
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    session.on('error', () => {});
    session.setTimeout(limits.idleTimeoutMs, () => {
      // Silent for the idle timeout: with nothing in flight it goes; a stream in flight has its own deadlines.
      if ((origin?.open ?? 0) === 0) session.close();
    });
    if (draining) session.close();
  });
  server.on('stream', (raw: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, rawHeaders: string[]) => {
    // First of all: a stream that errors (reset by the peer, closed with an error code here) must never take the
    // process down with an unhandled 'error' (found by test/e2e/h2-differential.test.ts).
    raw.on('error', () => {});
    const origin = origins.get(raw.session as Http2Session);
    if (origin === undefined) {
      raw.close(constants.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    // A head no HTTP/1.1 parse could have produced is refused as malformed (RFC 9113 §8.1.1: a stream error).
    if (headProblem(headers) !== undefined) {
      raw.close(constants.NGHTTP2_PROTOCOL_ERROR);
      return;
    }
    // RFC 9113 §6.5.2: nghttp2 advertises the limit but does not hold the peer to it; this does.
    if (headerListSize(rawHeaders) > limits.maxHeaderListSize) {
      refuse(raw, 431, 'head-too-large', `a header list over ${limits.maxHeaderListSize} bytes`);
      return;
    }
    const stream = new H2Stream(
      raw,
      headers,
      (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0,
      rawHeaders,
      origin.socket,
      origin.tunnel,
    );
    origin.open++;
    stream.onClose(() => origin.open--);
    // Rapid reset (CVE-2023-44487): nghttp2 hands over every stream of a read before it acts on the RST_STREAMs in
    // it (and before the reset-rate limit ends the session), so streams start after the read: a reset one never does.
    // One immediate for all the streams waiting, not one each.
    if (pending.push(stream) === 1) setImmediate(startPending);
  });

  /** Answers a stream refused before any handler (a problem document, as the HTTP/1.1 side answers). */
  const refuse = (raw: ServerHttp2Stream, status: 431, reason: string, detail: string): void => {
    const answer = limits.refusal({ status, code: 'BATON_REQUEST_HEAD_TOO_LARGE', reason, detail });
    const head: Record<string, string> = { ':status': String(status) };
    for (let i = 0; i + 1 < answer.fields.length; i += 2)
      head[(answer.fields[i] as string).toLowerCase()] = answer.fields[i + 1] as string;
    raw.on('error', () => {});
    raw.respond(head);
    raw.end(answer.body);
  };

  return {
    accept(socket, tunnel) {
      accepting = { socket, tunnel };
      try {
        server.emit('connection', socket);
      } finally {
        accepting = undefined;
      }
    },
    sessions: () => sessions.size,
    drain() {
      draining = true;
      for (const session of sessions) session.close();
    },
    closeAll() {
      for (const session of sessions) session.destroy();
    },
  };
}

/** RFC 9113 §6.5.2: a header list's size is its names' and values' octets plus 32 per field (pseudo-fields included). */
function headerListSize(rawHeaders: readonly string[]): number {
  let size = 0;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2)
    size += Buffer.byteLength(rawHeaders[i] as string) + Buffer.byteLength(rawHeaders[i + 1] as string) + 32;
  return size;
}
