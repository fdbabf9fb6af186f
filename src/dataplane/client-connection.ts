/**
 * One client connection of the socket data plane: the socket, its strict
 * parser (./http1-parser.ts) and the request in hand. Requests are read
 * and answered one at a time, in order; pipelined requests wait their
 * turn, unread. Each request becomes an HttpStream (./stream.ts) handed to
 * the handler as soon as its head is in; its body stays on the socket,
 * unread, until the handler lets it flow (after the policy allowed the
 * request), so a refused upload costs nothing but its first packet.
 *
 * The connection holds one state value; every transition names the states
 * it may leave (`#enter` asserts it). Only the connection knows how far
 * the request body has been read.
 *
 * | state | meaning | socket | timeout | next |
 * | --- | --- | --- | --- | --- |
 * | `idle` | between requests, no byte of the next head yet | reading | keep-alive: close quietly | head, held, answering, closing, closed, h2 |
 * | `head` | part of a request head in | reading | head timeout from its first byte: 408 | held, answering, closing, closed, h2 |
 * | `held` | a request in hand, its body unread until the handler lets it flow | paused | the handler's own | body, closing, closed |
 * | `body` | the body flowing into the handler's sink | reading | the handler's own | body-paused, answering, closing, closed |
 * | `body-paused` | the sink is full: reading stops until it drains | paused | the handler's own | body, closing, closed |
 * | `answering` | the request read to its end; its answer on the way | paused (pipelined bytes wait) | the handler's own | idle, closing, closed |
 * | `closing` | no more requests: the socket is ending, what arrives is dropped | reading | keep-alive: destroy | closed |
 * | `closed` | the socket is gone | — | — | — |
 * | `h2` | its first bytes were the HTTP/2 preface: the socket is the HTTP/2 listener's now | — | — | — |
 *
 * A connection whose framing is in any doubt goes to `closing`, never
 * back to `idle`: an answer given before its request body was read whole,
 * a refusal, a parser error, a handler that threw, a client FIN with a
 * request in hand (an abort, as node:http reads it), draining.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { type BodySink, HttpStream, type StreamConnection } from './stream.ts';
import { HttpFramingError, Http1Parser, type MessageHead } from './http1-parser.ts';
import { CONTINUE, lengthOf, responseHead, TUNNEL_ESTABLISHED } from './wire.ts';

export interface ConnectionOptions {
  /** The most bytes a request head may hold (./http1-parser.ts counts them). */
  readonly maxHeadBytes: number;
  /** A CONNECT may open a tunnel whose bytes are read as HTTP/1.1 requests to its authority (the outbound port). */
  readonly allowConnect?: boolean;
  /**
   * HTTP/2 with prior knowledge: a connection (or a tunnel) whose first bytes are the HTTP/2 connection preface
   * (RFC 9113 §3.4) is handed over, those bytes unread, with the tunnel's authority if any (./h2-listener.ts).
   */
  readonly onPreface?: (socket: Socket, tunnel: string | undefined) => void;
  /** How long a connection may sit idle between requests. */
  readonly keepAliveTimeoutMs: number;
  /** How long a request head may take to arrive once its first byte has. */
  readonly headersTimeoutMs: number;
  /** The whole answer to a request refused before any handler saw it (a problem document). */
  readonly refusal: (refusal: ConnectionRefusal) => RefusalAnswer;
}

/** What a listener tells its connections (./server.ts). */
export interface ListenerState {
  /** Shutting down: each response says `Connection: close` and its connection closes after it. */
  readonly draining: boolean;
}

/** Why a connection is answered without a handler: its bytes did not frame as one HTTP/1.1 request, or too slowly. */
export interface ConnectionRefusal {
  readonly status: 400 | 405 | 408 | 431 | 501;
  /** The refusal's code (docs/errors.md), as the parser classified it. */
  readonly code: string;
  readonly reason: string;
  readonly detail: string;
}

const REQUEST_TIMEOUT = 'BATON_REQUEST_TIMEOUT';
/** The status of each code the parser gives a request refusal; any other is 400. */
const REFUSAL_STATUS: Readonly<Record<string, ConnectionRefusal['status']>> = {
  BATON_REQUEST_HEAD_TOO_LARGE: 431,
  BATON_METHOD_NOT_ALLOWED: 405,
  BATON_UPGRADE_REFUSED: 501,
};

export interface RefusalAnswer {
  /** Flat `[name, value, …]`; framing is added by the writer. */
  readonly fields: readonly string[];
  readonly body: string;
}

type State = 'idle' | 'head' | 'held' | 'body' | 'body-paused' | 'answering' | 'closing' | 'closed' | 'h2';

/** A request is in hand in these states. */
const IN_REQUEST: ReadonlySet<State> = new Set(['held', 'body', 'body-paused', 'answering']);

export class ClientConnection implements StreamConnection {
  readonly socket: Socket;
  readonly keepAliveSeconds: number;
  readonly #handler: (stream: HttpStream) => void;
  readonly #options: ConnectionOptions;
  /** The listener's state: draining, each response closes its connection. */
  readonly #listener: ListenerState;
  #parser: Http1Parser;
  /** Inside a CONNECT tunnel: the authority it was opened to; every request in it must be for it. */
  #tunnel: string | undefined;
  /** Nothing parsed yet on this connection or tunnel: its first bytes may still be an HTTP/2 preface. */
  #fresh: boolean;
  #state: State = 'idle';
  /** Bytes read and not yet parsed: the rest of a body held back, or pipelined requests. */
  #pending: Buffer | undefined;
  #stream: HttpStream | undefined;
  /** Set by the parser's head callback, taken by #parse. */
  #head: MessageHead | undefined;
  #sink: BodySink | undefined;
  /** When the first byte of the head now arriving came (state `head`, or `idle` with bytes pending). */
  #headStarted = 0;
  /** Inside #pump: a handler answering at once (a refusal) re-enters it; the running loop picks the change up instead. */
  #pumping = false;

  constructor(
    socket: Socket,
    handler: (stream: HttpStream) => void,
    options: ConnectionOptions,
    listener: ListenerState,
  ) {
    this.socket = socket;
    this.#handler = handler;
    this.#options = options;
    this.#listener = listener;
    this.keepAliveSeconds = Math.floor(options.keepAliveTimeoutMs / 1000);
    this.#parser = this.#newParser(options.allowConnect === true);
    this.#fresh = options.onPreface !== undefined;
    socket.setTimeout(options.keepAliveTimeoutMs);
    socket.on('timeout', this.#listeners.timeout);
    socket.on('data', this.#listeners.data);
    socket.on('end', this.#listeners.end);
    // 'close' follows every error; the error itself (a reset) says nothing the client needs.
    socket.on('error', this.#listeners.error);
    socket.once('close', this.#listeners.close);
  }

  /** This connection's own socket listeners, removed whole when HTTP/2 takes the socket over. */
  readonly #listeners = {
    timeout: (): void => this.#onTimeout(),
    data: (chunk: Buffer): void => this.#onData(chunk),
    end: (): void => this.#onEnd(),
    error: (): void => {},
    close: (): void => this.#onClose(),
  };

  get state(): State {
    return this.#state;
  }

  get tunnel(): string | undefined {
    return this.#tunnel;
  }

  #newParser(connect: boolean): Http1Parser {
    return new Http1Parser(
      'request',
      {
        onHead: (head) => {
          this.#head = head;
        },
        onBody: (chunk) => {
          // llhttp reads its whole input: later body spans of the same input still reach the sink while it is full.
          if (this.#sink !== undefined && !this.#sink.data(chunk) && this.#state === 'body')
            this.#enter('body-paused', 'body');
        },
      },
      { maxHeadBytes: this.#options.maxHeadBytes, connect },
    );
  }

  /**
   * The CONNECT in hand was allowed: `200` (RFC 9110 §9.3.6: no framing fields), and from the next byte on the
   * connection is a tunnel read as HTTP/1.1 requests to the CONNECT's authority, by a fresh parser that allows no
   * CONNECT of its own.
   */
  openTunnel(stream: HttpStream): void {
    if (stream !== this.#stream || this.#state !== 'answering' || this.#tunnel !== undefined) return;
    this.write(TUNNEL_ESTABLISHED);
    this.#tunnel = stream.url;
    this.#parser.close();
    this.#parser = this.#newParser(false);
    this.#fresh = this.#options.onPreface !== undefined;
    this.#stream = undefined;
    stream.closeStream();
    this.#enter('idle', 'answering');
    this.#headStarted = this.#pending === undefined ? 0 : performance.now();
    this.#pump();
  }

  draining(): boolean {
    return this.#listener.draining;
  }

  write(chunk: Buffer | string): boolean {
    if (this.#state === 'closed') return true;
    // Strings are heads: latin1, one byte per character, as the parser read them (obs-text stays the byte it was).
    return typeof chunk === 'string' ? this.socket.write(chunk, 'latin1') : this.socket.write(chunk);
  }

  onDrain(listener: () => void): void {
    this.socket.on('drain', listener);
  }

  offDrain(listener: () => void): void {
    this.socket.off('drain', listener);
  }

  requestComplete(stream: HttpStream): boolean {
    return stream === this.#stream && this.#state === 'answering';
  }

  startBody(stream: HttpStream, sink: BodySink, sendContinue: boolean): void {
    if (stream !== this.#stream) return;
    // No body at all (or already read): the sink ends at once.
    if (this.#state === 'answering') {
      sink.end();
      return;
    }
    if (this.#state !== 'held') return;
    // RFC 9110 §10.1.1: the client waits for this before sending the body; it is sent only once the request is allowed.
    if (sendContinue && stream.httpVersion === '1.1') this.write(CONTINUE);
    this.#enter('body', 'held');
    this.#sink = sink;
    this.#pump();
  }

  resumeBody(): void {
    if (this.#state !== 'body-paused') return;
    this.#enter('body', 'body-paused');
    this.#pump();
  }

  responseDone(stream: HttpStream, keepAlive: boolean): void {
    if (stream !== this.#stream) return;
    this.#stream = undefined;
    this.#sink = undefined;
    stream.closeStream();
    // Reused only when the request was read to its last byte and both sides meant to keep the connection.
    if (!keepAlive || this.#state !== 'answering' || this.#listener.draining) {
      this.#close();
      return;
    }
    this.#enter('idle', 'answering');
    this.#headStarted = this.#pending === undefined ? 0 : performance.now();
    this.#pump();
  }

  /** Draining: a connection with no request in hand goes now (one handed to HTTP/2 drains there). */
  closeIfIdle(): void {
    if (this.#state !== 'h2' && !IN_REQUEST.has(this.#state)) this.destroy();
  }

  /** Cuts the connection: nothing more is parsed or written. */
  destroy(): void {
    if (this.#state !== 'closed' && this.#state !== 'h2') this.#state = 'closing';
    this.#pending = undefined;
    this.socket.destroy();
  }

  /** Moves to `next`, asserting the connection was in one of the states `from` allows. */
  #enter(next: State, ...from: State[]): void {
    assert.ok(from.includes(this.#state), `client connection: ${this.#state} → ${next}`);
    this.#state = next;
  }

  #onData(chunk: Buffer): void {
    // Answered and closing: what the client still sends is read and dropped, never kept.
    if (this.#state === 'closing' || this.#state === 'closed') return;
    if (this.#state === 'idle' && this.#pending === undefined) {
      this.#enter('head', 'idle');
      this.#headStarted = performance.now();
    }
    this.#pending = this.#pending === undefined ? chunk : Buffer.concat([this.#pending, chunk]);
    this.#pump();
  }

  /** Parses what is pending as far as the request in hand allows, and reads on only when there is room. */
  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      this.#parse();
    } finally {
      this.#pumping = false;
    }
    const state = this.#state;
    if (state === 'closing' || state === 'closed' || state === 'h2') return;
    if (
      (state === 'head' || state === 'idle') &&
      this.#headStarted !== 0 &&
      performance.now() - this.#headStarted > this.#options.headersTimeoutMs
    ) {
      this.#refuse({
        status: 408,
        code: REQUEST_TIMEOUT,
        reason: 'head',
        detail: `a request head still arriving after ${this.#options.headersTimeoutMs} ms`,
      });
      return;
    }
    if (state === 'idle' || state === 'head' || state === 'body') this.socket.resume();
    else this.socket.pause();
  }

  #parse(): void {
    if (this.#fresh && this.#pending !== undefined) {
      const preface = prefaceMatch(this.#pending);
      // A strict prefix of the preface: wait for the rest before deciding.
      if (preface === 'partial') return;
      this.#fresh = false;
      if (preface === 'whole') {
        this.#handOver();
        return;
      }
    }
    while (this.#pending !== undefined) {
      const state = this.#state;
      // A request in hand whose body is not wanted yet, or a pipelined request behind one: leave the bytes unread.
      if (state !== 'idle' && state !== 'head' && state !== 'body') return;
      if (state === 'idle') {
        this.#enter('head', 'idle');
        if (this.#headStarted === 0) this.#headStarted = performance.now();
      }
      const chunk = this.#pending;
      let result;
      try {
        result = this.#parser.execute(chunk);
      } catch (error) {
        this.#refuse(refusalOf(error));
        return;
      }
      this.#pending = result.consumed < chunk.length ? chunk.subarray(result.consumed) : undefined;
      const head = this.#head;
      if (head !== undefined) {
        this.#head = undefined;
        this.#begin(head, result.stoppedAt === 'message');
      } else if (result.stoppedAt === 'message' && (this.#state === 'body' || this.#state === 'body-paused')) {
        this.#enter('answering', 'body', 'body-paused');
        const sink = this.#sink;
        this.#sink = undefined;
        sink?.end();
      }
    }
  }

  /** HTTP/2 speaks on this socket: it leaves this connection, its bytes unread, for the HTTP/2 listener. */
  #handOver(): void {
    const socket = this.socket;
    const pending = this.#pending as Buffer;
    this.#pending = undefined;
    this.#enter('h2', 'idle', 'head');
    this.#parser.close();
    const own = this.#listeners;
    socket.off('data', own.data);
    socket.off('end', own.end);
    socket.off('timeout', own.timeout);
    socket.off('close', own.close);
    socket.off('error', own.error);
    socket.setTimeout(0);
    socket.pause();
    socket.unshift(pending);
    this.#options.onPreface?.(socket, this.#tunnel);
  }

  #begin(head: MessageHead, complete: boolean): void {
    this.#headStarted = 0;
    this.#enter(complete ? 'answering' : 'held', 'head');
    const stream = new HttpStream(this, head);
    this.#stream = stream;
    try {
      this.#handler(stream);
    } catch {
      // A handler answers through the stream and never throws; if one did, this connection ends, not the process.
      this.destroy();
    }
  }

  #refuse(refusal: ConnectionRefusal): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    const inRequest = IN_REQUEST.has(this.#state);
    this.#pending = undefined;
    // A refusal mid-body (bad chunk framing) cuts the stream in hand: its response may have begun.
    if (inRequest) {
      this.destroy();
      return;
    }
    const answer = this.#options.refusal(refusal);
    const body = Buffer.from(answer.body);
    this.#close(
      Buffer.concat([
        Buffer.from(responseHead(refusal.status, answer.fields, lengthOf(body.length), { kind: 'close' }), 'latin1'),
        body,
      ]),
    );
  }

  /** No more requests on this connection: end it, after `last` (an answer already written still goes out). */
  #close(last?: Buffer): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    this.#state = 'closing';
    this.#pending = undefined;
    this.socket.resume();
    if (last === undefined) this.socket.end();
    else this.socket.end(last);
  }

  #onTimeout(): void {
    const state = this.#state;
    // Idle between requests, or closing and the client not reading: go quietly.
    if (state === 'idle' || state === 'closing') this.destroy();
    // Part of a head in, then nothing: the client is told why.
    else if (state === 'head')
      this.#refuse({
        status: 408,
        code: REQUEST_TIMEOUT,
        reason: 'head',
        detail: `no byte of the request head for ${this.#options.keepAliveTimeoutMs} ms`,
      });
    // A request in hand: its own deadlines (body, upstream) bound it.
  }

  #onEnd(): void {
    const state = this.#state;
    if (state === 'idle' && this.#pending === undefined) this.#close();
    // The client closed inside a head, or with a request in hand (an abort, as node:http reads it): nothing to answer.
    else if (state !== 'closing' && state !== 'closed') this.destroy();
  }

  #onClose(): void {
    this.#state = 'closed';
    this.#pending = undefined;
    this.#sink = undefined;
    this.#parser.close();
    const stream = this.#stream;
    this.#stream = undefined;
    stream?.closeStream();
  }
}

function refusalOf(error: unknown): ConnectionRefusal {
  if (!(error instanceof HttpFramingError))
    return {
      status: 400,
      code: 'BATON_REQUEST_FRAMING',
      reason: 'unreadable',
      detail: 'a request that could not be read',
    };
  return { status: REFUSAL_STATUS[error.code] ?? 400, code: error.code, reason: error.reason, detail: error.message };
}

// RFC 9113 §3.4: the client connection preface.
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Whether `bytes` begin with the HTTP/2 preface, are still a prefix of it, or are something else. */
function prefaceMatch(bytes: Buffer): 'whole' | 'partial' | 'no' {
  const n = Math.min(bytes.length, PREFACE.length);
  if (bytes.compare(PREFACE, 0, n, 0, n) !== 0) return 'no';
  return n === PREFACE.length ? 'whole' : 'partial';
}
