/**
 * One request and its response on a client connection of the socket data
 * plane: what a handler reads (the request head, shaped like node:http's
 * IncomingMessage so the same helpers serve both) and how it answers (a
 * whole small response, or a head and body bytes passed through).
 *
 * The connection (./client-connection.ts) owns the socket, the parser and
 * the request body's state; the stream only asks it to write, to let the
 * body flow into a sink, and to say when the response is complete. Nothing
 * here buffers a body.
 *
 * | state | meaning | next |
 * | --- | --- | --- |
 * | `open` | no response head yet | streaming, cut |
 * | `streaming` | the head is written, body bytes follow | finished, cut |
 * | `finished` | the whole response handed to the socket | done |
 * | `done` | finished, and the connection has let go of it | — |
 * | `cut` | the connection went away (or was cut) before the response finished | — |
 */
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { MessageHead } from './http1-parser.ts';
import { type Framing, httpDate, lengthOf, type Persistence, responseHead } from './wire.ts';

/** What the request body flows into once a handler asks for it (the forwarder's upstream socket). */
export interface BodySink {
  /** A view of the client's bytes, valid only during the call; false asks the connection to pause reading. */
  data(chunk: Buffer): boolean;
  end(): void;
}

/** The connection side of a stream: implemented by ./client-connection.ts. */
export interface StreamConnection {
  readonly socket: Socket;
  /** Draining: every response closes its connection. */
  draining(): boolean;
  /** Seconds an idle kept-alive connection stays open, told to the client as node:http tells it (`Keep-Alive: timeout=…`). */
  readonly keepAliveSeconds: number;
  /** A string is written as latin1 (a head); a body is a Buffer. */
  write(chunk: Buffer | string): boolean;
  onDrain(listener: () => void): void;
  offDrain(listener: () => void): void;
  /** The request body has been read to its last byte (or there was none). */
  requestComplete(stream: HttpStream): boolean;
  startBody(stream: HttpStream, sink: BodySink, sendContinue: boolean): void;
  resumeBody(): void;
  /** The response is complete; `keepAlive` is what its head told the client. */
  responseDone(stream: HttpStream, keepAlive: boolean): void;
  /** The CONNECT in hand opens a tunnel (./client-connection.ts). */
  openTunnel(stream: HttpStream): void;
  /** Inside a CONNECT tunnel: its authority. */
  readonly tunnel: string | undefined;
  destroy(): void;
}

/** The few request fields the sidecar's helpers read: node:http's IncomingMessage has them too. */
export interface RequestHead {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly httpVersion: string;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: readonly string[];
  readonly socket: Socket;
}

/**
 * One request and its answer, whatever the protocol it came in (HTTP/1.1:
 * HttpStream below; HTTP/2: ./h2-stream.ts): what the sidecar's pipeline
 * and ports read and how they answer. Forwarding is the protocol's own
 * (./forward-call.ts, ./h2-forward.ts).
 */
export interface RequestStream extends RequestHead {
  readonly protocol: 'http/1.1' | 'h2';
  readonly method: string;
  readonly url: string;
  /** The head's fields as the forwarded-headers filter reads them (src/sidecar/headers.ts): no pseudo-fields. */
  readonly head: Pick<MessageHead, 'rawHeaders' | 'connection'>;
  /** A gRPC call (`content-type: application/grpc…`): refusals are gRPC statuses, never problem documents. */
  readonly grpc: boolean;
  /** The `grpc-status` the answer ended with, once known (the upstream's trailers, or a refusal). */
  readonly grpcStatus?: number | undefined;
  readonly hasBody: boolean;
  /** Inside a CONNECT tunnel: the authority it was opened to. */
  readonly tunnel: string | undefined;
  readonly statusCode: number;
  shouldKeepAlive: boolean;
  readonly headersSent: boolean;
  readonly finished: boolean;
  readonly closed: boolean;
  readonly requestComplete: boolean;
  onClose(listener: () => void): void;
  /** A whole answer with a small body (a problem document). */
  respond(status: number, fields: readonly string[], body: string): void;
  /** A gRPC refusal: HTTP 200 with `grpc-status` and `grpc-message` and no body (a trailers-only answer). */
  respondGrpc(code: number, message: string): void;
  /** Allowed CONNECT: the connection becomes a tunnel (HTTP/1.1 only). */
  openTunnel(): void;
  /** Cuts the stream (HTTP/2: RST_STREAM) or its connection (HTTP/1.1). */
  destroy(): void;
}

type State = 'open' | 'streaming' | 'finished' | 'done' | 'cut';

export class HttpStream implements RequestStream {
  readonly protocol = 'http/1.1' as const;
  /** gRPC needs HTTP/2: a gRPC call over HTTP/1.1 is read as the plain request it is. */
  readonly grpc = false;
  readonly method: string;
  readonly url: string;
  readonly httpVersion: string;
  readonly rawHeaders: readonly string[];
  readonly socket: Socket;
  /** The request head as the parser read it: its framing decides how its body is written on. */
  readonly head: MessageHead;
  /** The request has a body (Content-Length above 0, or chunked). */
  readonly hasBody: boolean;
  /** Inside a CONNECT tunnel: the authority it was opened to (`orders:7070`); every request in it must be for it. */
  readonly tunnel: string | undefined;
  /** The status written, 0 before the head. */
  statusCode = 0;
  /** Set false to close the connection after this response (a refusal mid-body, a timeout). */
  shouldKeepAlive: boolean;
  readonly #connection: StreamConnection;
  #state: State = 'open';
  #keepAlive = false;
  #headers: IncomingHttpHeaders | undefined;
  #listeners: Array<() => void> | undefined;

  constructor(connection: StreamConnection, head: MessageHead) {
    this.#connection = connection;
    this.head = head;
    this.method = head.method;
    this.url = head.url;
    this.httpVersion = head.versionMinor === 0 ? '1.0' : '1.1';
    this.rawHeaders = head.rawHeaders;
    this.socket = connection.socket;
    this.hasBody = head.framing !== 'none';
    this.shouldKeepAlive = head.keepAlive;
    this.tunnel = connection.tunnel;
  }

  /** Lower-case names; a repeated field's values joined with `, ` (RFC 9110 §5.3), as node:http does for most. */
  get headers(): IncomingHttpHeaders {
    if (this.#headers !== undefined) return this.#headers;
    const headers: Record<string, string> = {};
    const raw = this.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const name = (raw[i] as string).toLowerCase();
      const seen = headers[name];
      headers[name] = seen === undefined ? (raw[i + 1] as string) : `${seen}, ${raw[i + 1] as string}`;
    }
    this.#headers = headers;
    return headers;
  }

  /** The whole request body has been read off the connection. */
  get requestComplete(): boolean {
    return this.#connection.requestComplete(this);
  }

  get headersSent(): boolean {
    return this.statusCode !== 0;
  }

  /** The whole response has been handed to the socket. */
  get finished(): boolean {
    return this.#state === 'finished' || this.#state === 'done';
  }

  /** Over: the response finished, or the connection went away first. */
  get closed(): boolean {
    return this.#state === 'done' || this.#state === 'cut';
  }

  /** Called once when the stream is over, whichever way it ended. */
  onClose(listener: () => void): void {
    if (this.closed) {
      listener();
      return;
    }
    (this.#listeners ??= []).push(listener);
  }

  /** Starts the request body flowing into `sink`; `Expect: 100-continue` is answered now, once the request was allowed. */
  readBody(sink: BodySink): void {
    this.#connection.startBody(this, sink, this.headers.expect?.toLowerCase() === '100-continue');
  }

  resumeBody(): void {
    this.#connection.resumeBody();
  }

  /**
   * Writes the response head: `fields` is a flat `[name, value, …]` list
   * free of hop-by-hop and framing fields; `framing` is how the body that
   * follows is delimited, written by ./wire.ts.
   */
  writeHead(status: number, fields: readonly string[], framing: Framing): void {
    this.#connection.write(this.#headText(status, fields, framing));
  }

  #headText(status: number, fields: readonly string[], framing: Framing): string {
    assert.equal(this.#state, 'open', 'response head already written');
    this.#state = 'streaming';
    this.statusCode = status;
    // Kept alive only when the request was read to its end (a body still arriving cannot be skipped safely),
    // the answer has its own end, and the client and the sidecar both mean to keep the connection.
    // A refused CONNECT closes too: its client may already be sending the tunnel's bytes (RFC 9110 §9.3.6).
    const keepAlive =
      this.shouldKeepAlive &&
      this.method !== 'CONNECT' &&
      framing.kind !== 'close' &&
      this.#connection.requestComplete(this) &&
      !this.#connection.draining();
    this.#keepAlive = keepAlive;
    if (!keepAlive) this.shouldKeepAlive = false;
    const persistence: Persistence = keepAlive
      ? { kind: 'keep-alive', http10: this.httpVersion === '1.0', timeoutSeconds: this.#connection.keepAliveSeconds }
      : { kind: 'close' };
    return responseHead(status, fields, framing, persistence);
  }

  /** A whole response with a small body (problem documents); `fields` must hold no framing field. */
  respond(status: number, fields: readonly string[], body: string): void {
    const bytes = Buffer.from(body);
    const head = this.#headText(status, [...fields, 'date', httpDate()], lengthOf(bytes.length));
    // One write, one syscall: head (latin1) and body (UTF-8) together.
    this.socket.cork();
    this.#connection.write(head);
    if (this.method !== 'HEAD') this.#connection.write(bytes);
    this.socket.uncork();
    this.end();
  }

  /** gRPC needs HTTP/2; over HTTP/1.1 a refusal is a problem document (never reached: `grpc` is false). */
  respondGrpc(code: number, message: string): void {
    this.respond(500, ['content-type', 'text/plain'], `grpc-status ${code}: ${message}`);
  }

  /** Body bytes as they should appear on the wire (a string as latin1); false when the client is not keeping up. */
  write(chunk: Buffer | string): boolean {
    return this.#connection.write(chunk);
  }

  /** Holds writes back until `uncork`, so a head and the body bytes read with it leave in one syscall. */
  cork(): void {
    this.socket.cork();
  }

  uncork(): void {
    this.socket.uncork();
  }

  onDrain(listener: () => void): void {
    this.#connection.onDrain(listener);
  }

  offDrain(listener: () => void): void {
    this.#connection.offDrain(listener);
  }

  /** The response is complete: the connection goes on to the next request, or closes. */
  end(): void {
    if (this.#state !== 'streaming') return;
    this.#state = 'finished';
    this.#connection.responseDone(this, this.#keepAlive);
  }

  /** This CONNECT is allowed: `200 Connection Established`, and the connection becomes a tunnel read as HTTP/1.1. */
  openTunnel(): void {
    assert.equal(this.#state, 'open', 'a tunnel opens before any response');
    this.statusCode = 200;
    this.#state = 'finished';
    this.#connection.openTunnel(this);
  }

  /** Cuts the connection: a response that started cannot be turned into an error any more. */
  destroy(): void {
    this.shouldKeepAlive = false;
    this.#connection.destroy();
  }

  /** The connection is done with this stream (finished, or cut). */
  closeStream(): void {
    if (this.closed) return;
    this.#state = this.#state === 'finished' ? 'done' : 'cut';
    const listeners = this.#listeners;
    this.#listeners = undefined;
    if (listeners !== undefined) for (const listener of listeners) listener();
  }
}
