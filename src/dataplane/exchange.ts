/**
 * One request and its response on a client connection of the socket data
 * plane: what a handler reads (the request head, shaped like node:http's
 * IncomingMessage so the same helpers serve both) and how it answers
 * (a whole small response, or a head and body bytes passed through).
 *
 * The connection (./server.ts) owns the socket and the parser; the
 * exchange only asks it to write, to let the request body flow into a
 * sink, and to say when the response is complete. Nothing here buffers a
 * body.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { MessageHead } from './http1-parser.ts';

/** What the request body flows into once a handler asks for it (the forwarder's upstream socket). */
export interface BodySink {
  /** A view of the client's bytes, valid only during the call; false asks the connection to pause reading. */
  data(chunk: Buffer): boolean;
  end(): void;
}

/** The connection side of an exchange: implemented by ./server.ts. */
export interface ExchangeConnection {
  readonly socket: Socket;
  /** Draining: every response closes its connection. */
  draining(): boolean;
  /** Seconds an idle kept-alive connection stays open, told to the client as node:http tells it (`Keep-Alive: timeout=…`). */
  readonly keepAliveSeconds: number;
  /** A string is written as latin1 (a head); a body is a Buffer. */
  write(chunk: Buffer | string): boolean;
  onDrain(listener: () => void): void;
  offDrain(listener: () => void): void;
  startBody(exchange: Exchange, sink: BodySink, sendContinue: boolean): void;
  resumeBody(): void;
  responseDone(exchange: Exchange, reusable: boolean): void;
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

const CRLF = '\r\n';

export class Exchange implements RequestHead {
  readonly method: string;
  readonly url: string;
  readonly httpVersion: string;
  readonly rawHeaders: readonly string[];
  readonly socket: Socket;
  /** The request has a body (Content-Length above 0, or chunked). */
  readonly hasBody: boolean;
  /** The status written, 0 before the head. */
  statusCode = 0;
  /** Set false to close the connection after this response (a refusal mid-body, a timeout). */
  shouldKeepAlive: boolean;
  readonly #connection: ExchangeConnection;
  readonly #head: MessageHead;
  #headers: IncomingHttpHeaders | undefined;
  #requestComplete: boolean;
  #headersSent = false;
  #finished = false;
  #closed = false;
  #listeners: Array<() => void> | undefined;
  #bodyFlowing = false;

  constructor(connection: ExchangeConnection, head: MessageHead, complete: boolean) {
    this.#connection = connection;
    this.#head = head;
    this.method = head.method;
    this.url = head.url;
    this.httpVersion = head.versionMinor === 0 ? '1.0' : '1.1';
    this.rawHeaders = head.rawHeaders;
    this.socket = connection.socket;
    this.hasBody = head.framing !== 'none';
    this.#requestComplete = complete;
    this.shouldKeepAlive = head.keepAlive;
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

  get framing(): MessageHead['framing'] {
    return this.#head.framing;
  }

  /** The whole request body has been read off the connection. */
  get requestComplete(): boolean {
    return this.#requestComplete;
  }

  get headersSent(): boolean {
    return this.#headersSent;
  }

  /** The whole response has been handed to the socket. */
  get finished(): boolean {
    return this.#finished;
  }

  /** Over: the response finished, or the connection went away first. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Called once when the exchange is over, whichever way it ended. */
  onClose(listener: () => void): void {
    if (this.#closed) {
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
   * Writes the response head: `headers` is a flat `[name, value, …]` list, already free of hop-by-hop fields.
   * `as-is`: the list frames the body itself (Content-Length, or none); `chunked`: chunks follow; `close`: the body ends with the connection.
   */
  writeHead(status: number, headers: readonly string[], framing: 'as-is' | 'chunked' | 'close'): void {
    this.#connection.write(this.#headText(status, headers, framing));
  }

  #headText(status: number, headers: readonly string[], framing: 'as-is' | 'chunked' | 'close'): string {
    if (this.#headersSent) throw new Error('response head already written');
    this.#headersSent = true;
    this.statusCode = status;
    if (framing === 'close') this.shouldKeepAlive = false;
    // A body still arriving (a refusal mid-upload) cannot be skipped safely on a kept connection: close it.
    if (!this.#requestComplete && !this.#bodyFlowing) this.shouldKeepAlive = false;
    if (this.#connection.draining()) this.shouldKeepAlive = false;
    let head = statusAndFields(status, headers);
    if (framing === 'chunked') head += `transfer-encoding: chunked${CRLF}`;
    if (!this.shouldKeepAlive) head += `connection: close${CRLF}`;
    else head += `${this.httpVersion === '1.0' ? `connection: keep-alive${CRLF}` : ''}keep-alive: timeout=${this.#connection.keepAliveSeconds}${CRLF}`;
    return head + CRLF;
  }

  /** A whole response with a small body (problem documents); `headers` must not hold Content-Length. */
  respond(status: number, headers: readonly string[], body: string): void {
    const head = this.#headText(status, [...headers, 'date', httpDate(), 'content-length', String(Buffer.byteLength(body))], 'as-is');
    // One write, one syscall: head (latin1) and body (UTF-8) together.
    this.socket.cork();
    this.#connection.write(head);
    if (this.method !== 'HEAD') this.#connection.write(Buffer.from(body));
    this.socket.uncork();
    this.end();
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
    if (this.#finished || this.#closed) return;
    this.#finished = true;
    this.#connection.responseDone(this, this.shouldKeepAlive && this.#requestComplete);
  }

  /** Cuts the connection: a response that started cannot be turned into an error any more. */
  destroy(): void {
    this.shouldKeepAlive = false;
    this.#connection.destroy();
  }

  // --- for the connection ---

  /** The connection read the last byte of the request body. */
  requestEnded(): void {
    this.#requestComplete = true;
  }

  bodyStarted(): void {
    this.#bodyFlowing = true;
  }

  /** The connection is done with this exchange (finished, or cut). */
  closeExchange(): void {
    if (this.#closed) return;
    this.#closed = true;
    const listeners = this.#listeners;
    this.#listeners = undefined;
    if (listeners !== undefined) for (const listener of listeners) listener();
  }
}

/** A response's status line and the fields of a flat `[name, value, …]` list, each line ended; the blank line is the caller's. */
export function statusAndFields(status: number, headers: readonly string[]): string {
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}${CRLF}`;
  for (let i = 0; i + 1 < headers.length; i += 2) head += `${headers[i] as string}: ${headers[i + 1] as string}${CRLF}`;
  return head;
}

// RFC 9110 §6.6.1: an origin's own answers carry Date; built once a second, not per response.
let dateSecond = 0;
let dateText = '';
export function httpDate(): string {
  const second = Math.floor(Date.now() / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(second * 1000).toUTCString();
  }
  return dateText;
}
