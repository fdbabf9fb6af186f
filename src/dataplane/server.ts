/**
 * The client side of the socket data plane: a node:net (or node:tls)
 * server whose connections are read by the strict parser (./http1-parser.ts)
 * and answered one request at a time, in order (pipelined requests wait
 * their turn, unread). Each request becomes an Exchange (./exchange.ts)
 * handed to the handler as soon as its head is in; its body stays on the
 * socket, unread, until the handler lets it flow (after the policy allowed
 * the request), so a refused upload costs nothing but its first packet.
 *
 * Refused before the handler sees a byte: anything the parser refuses
 * (400, 431 for a head over the limit, 405 for CONNECT), with a problem
 * document, and the connection closed. A head must arrive whole within
 * `headersTimeoutMs` of its first byte (408), and a connection idle
 * between requests for `keepAliveTimeoutMs` is closed.
 */
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TlsOptions } from 'node:tls';
import { type BodySink, Exchange, type ExchangeConnection } from './exchange.ts';
import { HttpFramingError, Http1Parser, type MessageHead } from './http1-parser.ts';

export interface Http1ServerOptions {
  /** The most bytes a request head may hold (./http1-parser.ts counts them). */
  readonly maxHeadBytes: number;
  /** How long a connection may sit idle between requests. */
  readonly keepAliveTimeoutMs: number;
  /** How long a request head may take to arrive once its first byte has. */
  readonly headersTimeoutMs: number;
  /** True while shutting down: each response closes its connection. */
  readonly draining: () => boolean;
  /** Answers a request the parser refused: writes a whole response on `exchange`-less sockets. */
  readonly refuse: (socket: Socket, refusal: ConnectionRefusal) => void;
}

/** Why a connection is answered without a handler: its bytes did not frame as HTTP/1.1, or too slowly. */
export interface ConnectionRefusal {
  readonly status: 400 | 405 | 408 | 431;
  readonly reason: string;
  readonly detail: string;
}

export interface Http1Server {
  readonly server: Server;
  /** Closes connections with nothing in flight (shutdown). */
  closeIdle(): void;
  /** Cuts every connection (the grace period is over). */
  closeAll(): void;
}

export function createHttp1Server(handler: (exchange: Exchange) => void, options: Http1ServerOptions, tls?: TlsOptions): Http1Server {
  const connections = new Set<ClientConnection>();
  const accept = (socket: Socket): void => {
    const connection = new ClientConnection(socket, handler, options);
    connections.add(connection);
    socket.once('close', () => connections.delete(connection));
  };
  // allowHalfOpen: the connection decides what a client's FIN means (./#onEnd): an abort with a request in hand, as node:http reads it.
  const server = tls === undefined ? createNetServer({ allowHalfOpen: true, noDelay: true }, accept) : createTlsServer({ ...tls, allowHalfOpen: true, noDelay: true }, accept);
  return {
    server,
    closeIdle() {
      for (const connection of connections) connection.closeIfIdle();
    },
    closeAll() {
      for (const connection of connections) connection.destroy();
    },
  };
}

type BodyState = 'none' | 'held' | 'flowing' | 'done';

class ClientConnection implements ExchangeConnection {
  readonly socket: Socket;
  readonly keepAliveSeconds: number;
  readonly #handler: (exchange: Exchange) => void;
  readonly #options: Http1ServerOptions;
  readonly #parser: Http1Parser;
  /** Bytes read and not yet parsed: the rest of a body held back, or pipelined requests. */
  #pending: Buffer | undefined;
  #exchange: Exchange | undefined;
  #head: MessageHead | undefined;
  #body: BodyState = 'none';
  #sink: BodySink | undefined;
  #sinkFull = false;
  /** When the first byte of the head now arriving came; 0 while none has. */
  #headStarted = 0;
  #clientEnded = false;
  #gone = false;
  /** Inside #pump: a handler answering at once (a refusal) re-enters it; the running loop picks the change up instead. */
  #pumping = false;

  constructor(socket: Socket, handler: (exchange: Exchange) => void, options: Http1ServerOptions) {
    this.socket = socket;
    this.#handler = handler;
    this.#options = options;
    this.keepAliveSeconds = Math.floor(options.keepAliveTimeoutMs / 1000);
    this.#parser = new Http1Parser(
      'request',
      {
        onHead: (head) => {
          this.#head = head;
        },
        onBody: (chunk) => {
          if (this.#sink !== undefined && !this.#sink.data(chunk)) this.#sinkFull = true;
        },
      },
      { maxHeadBytes: options.maxHeadBytes },
    );
    socket.setTimeout(options.keepAliveTimeoutMs);
    socket.on('timeout', () => this.#onTimeout());
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => this.#onEnd());
    // 'close' follows every error; the error itself (a reset) says nothing the client needs.
    socket.on('error', () => {});
    socket.once('close', () => this.#onClose());
  }

  draining(): boolean {
    return this.#options.draining();
  }

  write(chunk: Buffer | string): boolean {
    if (this.#gone) return true;
    // Strings are heads: latin1, one byte per character, as the parser read them (obs-text stays the byte it was).
    return typeof chunk === 'string' ? this.socket.write(chunk, 'latin1') : this.socket.write(chunk);
  }

  onDrain(listener: () => void): void {
    this.socket.on('drain', listener);
  }

  offDrain(listener: () => void): void {
    this.socket.off('drain', listener);
  }

  startBody(exchange: Exchange, sink: BodySink, sendContinue: boolean): void {
    if (exchange !== this.#exchange || this.#body !== 'held') {
      if (this.#body === 'done' && exchange === this.#exchange) sink.end();
      return;
    }
    // RFC 9110 §10.1.1: the client waits for this before sending the body; it is sent only once the request is allowed.
    if (sendContinue && exchange.httpVersion === '1.1') this.write('HTTP/1.1 100 Continue\r\n\r\n');
    this.#body = 'flowing';
    this.#sink = sink;
    exchange.bodyStarted();
    this.#pump();
  }

  resumeBody(): void {
    if (!this.#sinkFull) return;
    this.#sinkFull = false;
    this.#pump();
  }

  responseDone(exchange: Exchange, reusable: boolean): void {
    if (exchange !== this.#exchange) return;
    this.#exchange = undefined;
    this.#sink = undefined;
    this.#sinkFull = false;
    exchange.closeExchange();
    if (!reusable || this.#body !== 'done' || this.#clientEnded || this.#options.draining()) {
      this.#gone = true;
      this.socket.end();
      return;
    }
    this.#body = 'none';
    this.#headStarted = this.#pending === undefined ? 0 : performance.now();
    this.#pump();
  }

  closeIfIdle(): void {
    if (this.#exchange === undefined) this.destroy();
  }

  destroy(): void {
    this.socket.destroy();
  }

  #onData(chunk: Buffer): void {
    // Answered and closing: what the client still sends is read and dropped, never kept.
    if (this.#gone) return;
    if (this.#exchange === undefined && this.#headStarted === 0) this.#headStarted = performance.now();
    this.#pending = this.#pending === undefined ? chunk : Buffer.concat([this.#pending, chunk]);
    this.#pump();
  }

  /** Parses what is pending as far as the exchange in hand allows, and reads on only when there is room. */
  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      this.#parse();
    } finally {
      this.#pumping = false;
    }
    if (this.#gone) return;
    const waiting = this.#exchange === undefined;
    if (waiting && this.#headStarted !== 0 && performance.now() - this.#headStarted > this.#options.headersTimeoutMs) {
      this.#refuse({ status: 408, reason: 'head-timeout', detail: `a request head still arriving after ${this.#options.headersTimeoutMs} ms` });
      return;
    }
    if (waiting || (this.#body === 'flowing' && !this.#sinkFull)) this.socket.resume();
    else this.socket.pause();
    if (waiting && this.#clientEnded && this.#pending === undefined) {
      this.#gone = true;
      this.socket.end();
    }
  }

  #parse(): void {
    while (this.#pending !== undefined && !this.#gone) {
      // A request in hand whose body is not wanted yet (or a pipelined request behind it): leave the bytes unread.
      if (this.#exchange !== undefined && this.#body !== 'flowing') break;
      if (this.#sinkFull) break;
      const chunk = this.#pending;
      let stoppedAt: 'head' | 'message' | 'chunk-end';
      let consumed: number;
      try {
        ({ consumed, stoppedAt } = this.#parser.execute(chunk));
      } catch (error) {
        this.#refuse(refusalOf(error));
        return;
      }
      this.#pending = consumed < chunk.length ? chunk.subarray(consumed) : undefined;
      const head = this.#head;
      if (head !== undefined) {
        this.#head = undefined;
        this.#begin(head, stoppedAt === 'message');
      } else if (stoppedAt === 'message' && this.#exchange !== undefined) {
        this.#body = 'done';
        this.#exchange.requestEnded();
        const sink = this.#sink;
        this.#sink = undefined;
        sink?.end();
      }
    }
  }

  #begin(head: MessageHead, complete: boolean): void {
    this.#headStarted = 0;
    const exchange = new Exchange(this, head, complete);
    this.#exchange = exchange;
    this.#body = complete ? 'done' : 'held';
    try {
      this.#handler(exchange);
    } catch {
      // A handler answers through the exchange and never throws; if one did, this connection ends, not the process.
      this.socket.destroy();
    }
  }

  #refuse(refusal: ConnectionRefusal): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#pending = undefined;
    // A refusal mid-body (bad chunk framing) cuts the exchange in hand: its response may have begun.
    if (this.#exchange !== undefined) {
      this.socket.destroy();
      return;
    }
    this.#options.refuse(this.socket, refusal);
  }

  #onTimeout(): void {
    if (this.#exchange !== undefined) return;
    // Idle between requests: close quietly. Part of a head in, then nothing: the client is told why.
    if (this.#headStarted === 0) this.socket.destroy();
    else this.#refuse({ status: 408, reason: 'head-timeout', detail: `no byte of the request head for ${this.#options.keepAliveTimeoutMs} ms` });
  }

  #onEnd(): void {
    this.#clientEnded = true;
    if (this.#exchange === undefined) {
      if (this.#headStarted !== 0) {
        // The client closed inside a request head: nothing to answer.
        this.socket.destroy();
        return;
      }
      this.#gone = true;
      this.socket.end();
    } else {
      // Closed inside the request body, or while its answer is on the way: the client is gone.
      this.socket.destroy();
    }
  }

  #onClose(): void {
    this.#gone = true;
    this.#pending = undefined;
    this.#parser.close();
    const exchange = this.#exchange;
    this.#exchange = undefined;
    exchange?.closeExchange();
  }
}

function refusalOf(error: unknown): ConnectionRefusal {
  if (!(error instanceof HttpFramingError)) return { status: 400, reason: 'unreadable', detail: 'a request that could not be read' };
  if (error.reason === 'head-too-large') return { status: 431, reason: error.reason, detail: error.message };
  if (error.reason === 'connect') return { status: 405, reason: error.reason, detail: error.message };
  return { status: 400, reason: error.reason, detail: error.message };
}
