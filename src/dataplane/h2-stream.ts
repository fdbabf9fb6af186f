/**
 * One HTTP/2 request and its answer (RFC 9113), as the sidecar's pipeline
 * and ports read it (./stream.ts `RequestStream`): a node:http2 server
 * stream with its head read once. nghttp2 does the framing; nothing here
 * reads or writes a frame.
 *
 * What an HTTP/2 head may not carry, or must carry, is refused before a
 * handler sees it (./h2-listener.ts calls `headProblem` first): no
 * `:authority` (or a `host` naming another one, RFC 9113 §8.3.1), an
 * authority that is not `host[:port]`, a `:path` that is not origin-form.
 * A field whose value holds CR, LF or NUL or has whitespace at either end
 * (RFC 9113 §8.2.1) never gets this far either: nghttp2 drops the field
 * (test/e2e/h2-differential.test.ts holds that it never reaches an
 * app).
 * Connection-specific fields never get this far: nghttp2 refuses them as
 * malformed (RFC 9113 §8.2.2).
 */
import { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { RequestStream } from './stream.ts';

const AUTHORITY = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]{1,5})?$/;
const NO_OPTIONS: readonly string[] = [];

/** Why an HTTP/2 head cannot be taken as one request, or undefined when it can. */
export function headProblem(headers: IncomingHttpHeaders): string | undefined {
  const authority = headers[':authority'];
  if (typeof authority !== 'string' || !AUTHORITY.test(authority)) return 'an :authority that is not host[:port]';
  if (headers.host !== undefined && headers.host !== authority)
    return 'a host field naming another authority than :authority';
  const path = headers[':path'];
  if (headers[':method'] !== 'CONNECT' && (typeof path !== 'string' || path.charCodeAt(0) !== 0x2f))
    return 'a :path that is not origin-form';
  return undefined;
}

export class H2Stream implements RequestStream {
  readonly protocol = 'h2' as const;
  readonly method: string;
  readonly url: string;
  readonly httpVersion = '2.0';
  /** Lower-case names; `host` is `:authority` (what the HTTP/1.1 helpers read). */
  readonly headers: IncomingHttpHeaders;
  /** Name, value, …: the fields as received, pseudo-fields left out. */
  readonly rawHeaders: readonly string[];
  readonly head: { readonly rawHeaders: readonly string[]; readonly connection: readonly string[] };
  readonly socket: Socket;
  readonly grpc: boolean;
  readonly hasBody: boolean;
  readonly tunnel: string | undefined;
  /** The node:http2 stream, for the forwarder (./h2-forward.ts). */
  readonly raw: ServerHttp2Stream;
  statusCode = 0;
  grpcStatus: number | undefined;
  /** HTTP/2 has no connection to keep or close per request. */
  shouldKeepAlive = true;
  #finished = false;
  /** Who waits for the stream to close: one 'close' listener on the node stream calls them all. */
  #onClose: (() => void)[] = [];

  constructor(
    raw: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    endStream: boolean,
    rawHeaders: readonly string[],
    socket: Socket,
    tunnel: string | undefined,
  ) {
    this.raw = raw;
    this.method = String(headers[':method']);
    this.url = String(headers[':path'] ?? '');
    const plain: string[] = [];
    for (let i = 0; i + 1 < rawHeaders.length; i += 2)
      if ((rawHeaders[i] as string).charCodeAt(0) !== 0x3a)
        plain.push(rawHeaders[i] as string, rawHeaders[i + 1] as string);
    this.rawHeaders = plain;
    this.head = { rawHeaders: plain, connection: NO_OPTIONS };
    // node made this object for this stream alone: `host` is set on it rather than on a copy (headProblem has held
    // a host field the caller sent to equal :authority).
    headers.host = headers[':authority'] as string;
    this.headers = headers;
    this.socket = socket;
    this.grpc = typeof headers['content-type'] === 'string' && headers['content-type'].startsWith('application/grpc');
    this.hasBody = !endStream;
    this.tunnel = tunnel;
    raw.once('close', () => {
      const listeners = this.#onClose;
      this.#onClose = [];
      for (const listener of listeners) listener();
    });
  }

  get headersSent(): boolean {
    return this.raw.headersSent;
  }

  get finished(): boolean {
    return this.#finished;
  }

  get closed(): boolean {
    return this.raw.closed || this.raw.destroyed;
  }

  get requestComplete(): boolean {
    return !this.hasBody || this.raw.readableEnded;
  }

  onClose(listener: () => void): void {
    if (this.closed) listener();
    else this.#onClose.push(listener);
  }

  /** The answer started: the forwarder sets this when it passes the upstream's head on. */
  answered(status: number): void {
    this.statusCode = status;
  }

  /** The answer is whole (the forwarder's last byte, or a refusal). */
  done(): void {
    this.#finished = true;
  }

  respond(status: number, fields: readonly string[], body: string): void {
    if (this.closed || this.headersSent) return;
    const head: Record<string, string | string[]> = { ':status': String(status) };
    for (let i = 0; i + 1 < fields.length; i += 2) head[(fields[i] as string).toLowerCase()] = fields[i + 1] as string;
    const bytes = Buffer.from(body);
    head['content-length'] = String(bytes.length);
    this.statusCode = status;
    this.#finished = true;
    const endStream = this.method === 'HEAD';
    this.raw.respond(head, { endStream });
    if (!endStream) this.raw.end(bytes);
    this.#discardBody();
  }

  /** gRPC over HTTP/2 (PROTOCOL-HTTP2.md, "Responses"): a trailers-only answer, HTTP 200, the status in `grpc-status`. */
  respondGrpc(code: number, message: string): void {
    if (this.closed || this.headersSent) return;
    this.statusCode = 200;
    this.grpcStatus = code;
    this.#finished = true;
    this.raw.respond(
      {
        ':status': '200',
        'content-type': 'application/grpc',
        'grpc-status': String(code),
        'grpc-message': grpcMessage(message),
      },
      { endStream: true },
    );
    this.#discardBody();
  }

  openTunnel(): void {
    throw new Error('HTTP/2 CONNECT tunnels are not opened');
  }

  destroy(): void {
    if (!this.closed) this.raw.close(constants.NGHTTP2_INTERNAL_ERROR);
  }

  /** A refused request's body is read and dropped, so flow control does not stall the session's other streams. */
  #discardBody(): void {
    if (this.hasBody && !this.raw.readableEnded) this.raw.resume();
  }
}

/** `grpc-message` is percent-encoded UTF-8 (gRPC PROTOCOL-HTTP2.md): every byte outside printable ASCII, and `%`. */
export function grpcMessage(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8'))
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}
