/**
 * A strict HTTP/1.1 message parser for the data plane on sockets: llhttp,
 * the parser Node.js itself uses, in the WebAssembly build that undici
 * ships, with every leniency off and refusals of its own on top. One
 * parser per connection and direction; it reads requests (what a client
 * sends) or responses (what an upstream answers).
 *
 * The parser finds framing and nothing else. It never copies a body: each
 * body callback gets a view of the caller's chunk, valid during the call.
 * `execute` stops at the end of every head and at the end of every message
 * and says how many bytes of the chunk it has consumed, so a forwarder can
 * rewrite a request head and pass everything after it through as it came,
 * or pass a whole response through byte for byte and know where it ends.
 *
 * Refused, before the head is handed to anyone (RFC 9112 §6.3, §11.2 and
 * the request-smuggling literature), in both directions unless said:
 *
 * | reason | what |
 * | --- | --- |
 * | `content-length` | Content-Length with Transfer-Encoding, several Content-Length fields (even equal), one that is not digits |
 * | `transfer-encoding` | a Transfer-Encoding other than exactly `chunked`, or several; any on an HTTP/1.0 request |
 * | `connection` | a `Connection` option that is not a token, or that names a framing field (`Content-Length`, `Transfer-Encoding`, `Host`) or a `baton-*` field: a hop-by-hop filter would drop it and leave the body unframed |
 * | `host` | requests: no Host, several, or one that is not an authority (RFC 3986 §3.2) |
 * | `upgrade` | requests: `Upgrade`, or an `upgrade` connection option (not forwarded: 501) |
 * | `version` | a version other than HTTP/1.0 or HTTP/1.1, including a request line without one (HTTP/0.9) |
 * | `connect` | requests: CONNECT (405), except where a tunnel is read as HTTP (the outbound port): there only `host:port` without a body |
 * | `head-too-large` | a head (request or status line, every field line, the blank line) over the limit, counted in bytes as they arrive (431) |
 * | llhttp's own | obs-fold, bare CR or LF, invalid tokens, chunk framing |
 *
 * Field values are trimmed of SP and HTAB only (RFC 9110 §5.5), never of
 * other Unicode spaces. test/dataplane/differential.test.ts holds the
 * parser to node:http's framing: the same or a refusal, never a third
 * reading; test/e2e/hop-differential.test.ts holds a whole sidecar
 * pair to real origins the same way.
 */
import { createRequire } from 'node:module';
import { BatonError } from '../core/errors.ts';
import { trimOws } from './wire.ts';

const require = createRequire(import.meta.url);
// undici has no exports map: these are its own files, pinned by package-lock; test/dataplane checks the build's shape.
const llhttpConstants = require('undici/lib/llhttp/constants.js') as {
  ERROR: Record<string, number>;
  METHODS: Record<string, number>;
  TYPE: Record<string, number>;
};

export type MessageKind = 'request' | 'response';

/** One message head as read off the wire. Header names and values are latin1 strings, as node:http gives them. */
export interface MessageHead {
  /** Requests: the method, e.g. `GET`. */
  readonly method: string;
  /** Requests: the request target as sent. */
  readonly url: string;
  /** Responses: the status code. */
  readonly statusCode: number;
  readonly versionMinor: number;
  /** Name, value, name, value…: the order and case the sender used. */
  readonly rawHeaders: readonly string[];
  /** llhttp's reading of Connection and the version: another message may follow on this connection. */
  readonly keepAlive: boolean;
  /** The `Connection` options, lower-cased: fields a hop-by-hop filter drops (none names a framing field). */
  readonly connection: readonly string[];
  /** llhttp's upgrade flag: a response's 101 (a request that asks for one is refused). */
  readonly upgrade: boolean;
  /** How the body is framed: none (no body), length (Content-Length), chunked, or until-close (responses only). */
  readonly framing: 'none' | 'length' | 'chunked' | 'until-close';
  readonly contentLength: number | undefined;
}

export interface ParserHandlers {
  /** Return true to read no body (a response to HEAD, or a 1xx/204/304, which llhttp knows itself). */
  onHead(head: MessageHead): boolean | void;
  onBody?(chunk: Buffer): void;
  onMessageComplete?(): void;
}

/** Requests refused for a reason with a code of its own: each is answered with another status (431, 405, 501). */
const REQUEST_REFUSALS: Readonly<Record<string, string>> = {
  'head-too-large': 'BATON_REQUEST_HEAD_TOO_LARGE',
  connect: 'BATON_METHOD_NOT_ALLOWED',
  upgrade: 'BATON_UPGRADE_REFUSED',
};

/**
 * Why a message was refused: the reason of the table above (llhttp's
 * error name where it was llhttp that refused), and its code: a response
 * is BATON_UPSTREAM_FRAMING whatever the reason, a request
 * BATON_REQUEST_FRAMING unless its reason has a code of its own.
 */
export class HttpFramingError extends BatonError {
  declare readonly reason: string;
  constructor(kind: MessageKind, reason: string, detail: string) {
    super(
      kind === 'response' ? 'BATON_UPSTREAM_FRAMING' : (REQUEST_REFUSALS[reason] ?? 'BATON_REQUEST_FRAMING'),
      `malformed HTTP/1.1 message (${reason}): ${detail}`,
      { reason },
    );
    this.name = 'HttpFramingError';
  }
}

/** What one `execute` call did: bytes of the chunk consumed, and whether it stopped at a head's end or a message's end. */
export interface ExecuteResult {
  readonly consumed: number;
  readonly stoppedAt: 'head' | 'message' | 'chunk-end';
}

export interface ParserOptions {
  /** The most bytes a head may hold: its first line, every field line and the blank line, as they arrive. The same bound applies to a chunked body's trailer section. */
  readonly maxHeadBytes: number;
  /**
   * Requests: a CONNECT to `host:port` (authority-form, RFC 9112 §3.2.3), without a body, is read as a message of
   * its own and the parser stops after it: what follows is the tunnel's, for a new parser (the outbound port).
   */
  readonly connect?: boolean;
}

/** The little of the WebAssembly JS API used here (the project's TypeScript lib has no DOM types). */
interface Wasm {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (
    module: object,
    imports: Record<string, Record<string, (...args: number[]) => number>>,
  ) => { readonly exports: unknown };
}
const WASM = (globalThis as unknown as { WebAssembly: Wasm }).WebAssembly;

interface Llhttp {
  readonly memory: { readonly buffer: ArrayBuffer };
  llhttp_alloc(type: number): number;
  llhttp_free(ptr: number): void;
  llhttp_execute(ptr: number, data: number, length: number): number;
  llhttp_finish(ptr: number): number;
  llhttp_resume(ptr: number): void;
  llhttp_get_error_pos(ptr: number): number;
  llhttp_get_error_reason(ptr: number): number;
  llhttp_errno_name(errno: number): number;
  llhttp_get_method(ptr: number): number;
  llhttp_get_http_major(ptr: number): number;
  llhttp_get_http_minor(ptr: number): number;
  llhttp_message_needs_eof(ptr: number): number;
  malloc(size: number): number;
  free(ptr: number): void;
}

const { ERROR, TYPE } = llhttpConstants;
const METHOD_NAMES: readonly string[] = (() => {
  const names: string[] = [];
  for (const [name, code] of Object.entries(llhttpConstants.METHODS)) names[code] ??= name;
  return names;
})();

/** The parser now inside `llhttp_execute`: llhttp's callbacks are per instance, not per parser, as in undici. */
let current: Http1Parser | undefined;
let currentChunk: Buffer = Buffer.alloc(0);
let currentPtr = 0;
let wasm: Llhttp | undefined;
let scratchPtr = 0;
let scratchSize = 0;

function instance(): Llhttp {
  if (wasm !== undefined) return wasm;
  let module: object;
  try {
    module = new WASM.Module(require('undici/lib/llhttp/llhttp_simd-wasm.js') as Buffer);
  } catch {
    module = new WASM.Module(require('undici/lib/llhttp/llhttp-wasm.js') as Buffer);
  }
  // Spans are offsets into the caller's chunk: strings are read straight out of it, with no Buffer view allocated per span.
  const view = (at: number, length: number): Buffer => currentChunk.subarray(at - currentPtr, at - currentPtr + length);
  const text = (at: number, length: number): string =>
    currentChunk.toString('latin1', at - currentPtr, at - currentPtr + length);
  const target = (): Http1Parser => current as Http1Parser;
  const made = new WASM.Instance(module, {
    env: {
      wasm_on_message_begin: () => target().onMessageBegin(),
      wasm_on_url: (_p: number, at: number, length: number) => target().onUrl(text(at, length)),
      wasm_on_status: () => 0,
      wasm_on_header_field: (_p: number, at: number, length: number) => target().onHeaderField(text(at, length)),
      wasm_on_header_value: (_p: number, at: number, length: number) => target().onHeaderValue(text(at, length)),
      wasm_on_headers_complete: (_p: number, statusCode: number, upgrade: number, keepAlive: number) =>
        target().onHeadersComplete(statusCode, upgrade === 1, keepAlive === 1),
      wasm_on_body: (_p: number, at: number, length: number) => target().onBody(view(at, length)),
      wasm_on_message_complete: () => target().onMessageComplete(),
    },
  });
  wasm = made.exports as unknown as Llhttp;
  return wasm;
}

function cString(llhttp: Llhttp, ptr: number): string {
  if (ptr === 0) return '';
  const bytes = new Uint8Array(llhttp.memory.buffer, ptr);
  return Buffer.from(bytes.subarray(0, bytes.indexOf(0))).toString('latin1');
}

/**
 * Where the parser is inside the current message: reading its head (every
 * byte counts against the head limit) or past it (body, chunk framing,
 * trailers). Starts in `head`; `onHeadersComplete` moves to `body`,
 * `onMessageComplete` back to `head`.
 */
type Phase = 'head' | 'body';

export class Http1Parser {
  readonly #llhttp: Llhttp;
  readonly #kind: MessageKind;
  readonly #handlers: ParserHandlers;
  readonly #maxHeadBytes: number;
  readonly #connect: boolean;
  #ptr: number;
  #phase: Phase = 'head';
  #url = '';
  #headers: string[] = [];
  #field = '';
  #value = '';
  #inValue = false;
  /** Bytes of the current head fed to llhttp before this execute call. */
  #headBytes = 0;
  /** Bytes of a trailer section's fields (names and values) seen so far. */
  #trailerBytes = 0;
  #stop: 'head' | 'message' | undefined;
  #refusal: HttpFramingError | undefined;
  #paused = false;
  #closed = false;

  constructor(kind: MessageKind, handlers: ParserHandlers, options: ParserOptions) {
    this.#llhttp = instance();
    this.#kind = kind;
    this.#handlers = handlers;
    this.#maxHeadBytes = options.maxHeadBytes;
    this.#connect = options.connect === true;
    this.#ptr = this.#llhttp.llhttp_alloc(kind === 'request' ? TYPE.REQUEST! : TYPE.RESPONSE!);
  }

  /**
   * Parses `chunk` from the start, stopping after a head (so the caller may
   * decide before any body byte is handed on) and after each message. Call
   * again with the rest (`chunk.subarray(consumed)`) to go on. Throws
   * HttpFramingError on anything malformed; the connection must then close.
   */
  execute(chunk: Buffer): ExecuteResult {
    if (this.#closed) throw new Error('the parser is closed');
    const llhttp = this.#llhttp;
    if (this.#paused) {
      llhttp.llhttp_resume(this.#ptr);
      this.#paused = false;
    }
    if (chunk.length === 0) return { consumed: 0, stoppedAt: 'chunk-end' };
    // Inside a head, llhttp is fed no more than the head may still hold: a head that has not ended by then is too large,
    // and it is refused before any of it reaches a handler, whatever its fields look like.
    const room = this.#phase === 'head' ? this.#maxHeadBytes - this.#headBytes : chunk.length;
    const fed = room < chunk.length ? chunk.subarray(0, room) : chunk;
    const code = this.#run(fed);
    if (this.#refusal !== undefined) throw this.#refusal;
    if (code === ERROR.OK) {
      if (this.#phase === 'head') {
        this.#headBytes += fed.length;
        if (fed.length < chunk.length)
          throw new HttpFramingError(this.#kind, 'head-too-large', `a head over ${this.#maxHeadBytes} bytes`);
      }
      return { consumed: fed.length, stoppedAt: 'chunk-end' };
    }
    if (code === ERROR.PAUSED && this.#stop !== undefined) {
      this.#paused = true;
      return { consumed: llhttp.llhttp_get_error_pos(this.#ptr) - scratchPtr, stoppedAt: this.#stop };
    }
    if (code === ERROR.PAUSED_UPGRADE)
      throw new HttpFramingError(this.#kind, 'upgrade', 'protocol upgrades are not forwarded');
    throw new HttpFramingError(
      this.#kind,
      cString(llhttp, llhttp.llhttp_errno_name(code)),
      cString(llhttp, llhttp.llhttp_get_error_reason(this.#ptr)),
    );
  }

  #run(bytes: Buffer): number {
    const llhttp = this.#llhttp;
    if (bytes.length > scratchSize) {
      if (scratchPtr !== 0) llhttp.free(scratchPtr);
      scratchSize = Math.ceil(bytes.length / 4096) * 4096;
      scratchPtr = llhttp.malloc(scratchSize);
    }
    new Uint8Array(llhttp.memory.buffer, scratchPtr, bytes.length).set(bytes);
    this.#stop = undefined;
    try {
      // eslint-disable-next-line @typescript-eslint/no-this-alias -- llhttp's callbacks are per instance; they find the parser here
      current = this;
      currentChunk = bytes;
      currentPtr = scratchPtr;
      return llhttp.llhttp_execute(this.#ptr, scratchPtr, bytes.length);
    } finally {
      current = undefined;
      currentChunk = EMPTY;
    }
  }

  /** The peer closed its side: ends a response read until close, or throws if a message was cut short. */
  finish(): void {
    if (this.#closed) return;
    if (this.#paused) {
      this.#llhttp.llhttp_resume(this.#ptr);
      this.#paused = false;
    }
    let code: number;
    try {
      // eslint-disable-next-line @typescript-eslint/no-this-alias -- as in execute()
      current = this;
      code = this.#llhttp.llhttp_finish(this.#ptr);
    } finally {
      current = undefined;
    }
    if (this.#refusal !== undefined) throw this.#refusal;
    if (code !== ERROR.OK && code !== ERROR.PAUSED)
      throw new HttpFramingError(
        this.#kind,
        cString(this.#llhttp, this.#llhttp.llhttp_errno_name(code)),
        'the connection closed inside a message',
      );
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#llhttp.llhttp_free(this.#ptr);
    this.#ptr = 0;
  }

  // --- llhttp callbacks (return 0 to go on, -1 to stop with an error, ERROR.PAUSED to pause) ---

  onMessageBegin(): number {
    this.#url = '';
    this.#headers = [];
    this.#field = '';
    this.#value = '';
    this.#inValue = false;
    return 0;
  }

  onUrl(text: string): number {
    this.#url += text;
    return 0;
  }

  onHeaderField(text: string): number {
    if (this.#inValue) this.#pushHeader();
    this.#field += text;
    return this.#countTrailer(text.length);
  }

  onHeaderValue(text: string): number {
    this.#inValue = true;
    // llhttp hands obs-fold on as a value holding CR LF SP; a bare CR or LF in a value is refused the same way.
    if (text.includes('\r') || text.includes('\n'))
      return this.#refuse(
        'obs-fold',
        'a header value continued on the next line (obs-fold) or holding a bare CR or LF',
      );
    this.#value += text;
    return this.#countTrailer(text.length);
  }

  onHeadersComplete(statusCode: number, upgrade: boolean, keepAlive: boolean): number {
    if (this.#inValue || this.#field !== '') this.#pushHeader();
    this.#phase = 'body';
    this.#headBytes = 0;
    this.#trailerBytes = 0;
    const request = this.#kind === 'request';
    const fields = readFramingFields(this.#headers);
    if (typeof fields === 'string') return this.#refuse(fields, REFUSALS[fields]);
    const { contentLength, lengths, transferEncoding, hosts, host, connection, upgradeField } = fields;
    const llhttp = this.#llhttp;
    const versionMinor = llhttp.llhttp_get_http_minor(this.#ptr);
    // HTTP/1.0 and HTTP/1.1 only: llhttp reads a request line without a version (`POST /xHTTP/1.1`) as HTTP/0.9,
    // whose next lines a 1.1 server would read as fields and a body.
    if (llhttp.llhttp_get_http_major(this.#ptr) !== 1 || versionMinor > 1)
      return this.#refuse('version', 'a message that is not HTTP/1.0 or HTTP/1.1');
    if (lengths > 1) return this.#refuse('content-length', 'more than one Content-Length field');
    if (lengths > 0 && transferEncoding !== undefined)
      return this.#refuse('content-length', 'Content-Length together with Transfer-Encoding');
    // RFC 9112 §6.1: only `chunked` as the final coding frames a message; baton passes on no other coding, in either direction.
    if (transferEncoding !== undefined && transferEncoding !== 'chunked')
      return this.#refuse('transfer-encoding', 'a Transfer-Encoding other than exactly chunked');
    // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 request means the framing is faulty.
    if (request && transferEncoding !== undefined && versionMinor === 0)
      return this.#refuse('transfer-encoding', 'Transfer-Encoding on an HTTP/1.0 request');
    for (const option of connection) {
      if (
        option === 'content-length' ||
        option === 'transfer-encoding' ||
        option === 'host' ||
        option.startsWith('baton-')
      ) {
        return this.#refuse(
          'connection',
          `a Connection option naming the ${option.startsWith('baton-') ? 'baton-* field' : 'framing field'} ${option}`,
        );
      }
    }
    if (request) {
      const connect = llhttp.llhttp_get_method(this.#ptr) === llhttpConstants.METHODS.CONNECT;
      // CONNECT turns the connection into a tunnel: refused where nothing reads the tunnel as HTTP (the inbound port);
      // where something does (the outbound port), only `host:port` and no body, so the tunnel starts at a known byte.
      if (connect && !this.#connect) return this.#refuse('connect', 'CONNECT is not forwarded');
      if (connect && (lengths > 0 || transferEncoding !== undefined || !CONNECT_TARGET.test(this.#url)))
        return this.#refuse('connect', 'a CONNECT that is not host:port without a body');
      // Upgrades are refused whole, with or without the matching connection option: after a 101 the bytes are no longer HTTP.
      if (!connect && (upgrade || upgradeField || connection.includes('upgrade')))
        return this.#refuse('upgrade', 'protocol upgrades are not forwarded');
      if (hosts !== 1) return this.#refuse('host', hosts === 0 ? 'a request without Host' : 'more than one Host field');
      if (!AUTHORITY.test(host)) return this.#refuse('host', 'a Host that is not an authority (host[:port])');
    }
    // RFC 9112 §6.3: a 1xx, 204 or 304 response has no body whatever its fields say (llhttp knows this too).
    const bodiless = !request && (statusCode < 200 || statusCode === 204 || statusCode === 304);
    const framing: MessageHead['framing'] = bodiless
      ? 'none'
      : transferEncoding === 'chunked'
        ? 'chunked'
        : contentLength !== undefined
          ? contentLength === 0
            ? 'none'
            : 'length'
          : !request && llhttp.llhttp_message_needs_eof(this.#ptr) === 1
            ? 'until-close'
            : 'none';
    const head: MessageHead = {
      method: request ? (METHOD_NAMES[llhttp.llhttp_get_method(this.#ptr)] ?? '') : '',
      url: this.#url,
      statusCode: request ? 0 : statusCode,
      versionMinor,
      rawHeaders: this.#headers,
      keepAlive,
      connection,
      upgrade,
      framing,
      contentLength,
    };
    let skipBody: boolean | void;
    try {
      skipBody = this.#handlers.onHead(head);
    } catch (error) {
      return this.#refuse('handler', error instanceof Error ? error.message : String(error));
    }
    // 1: read no body (a response to HEAD). Then, as for any message without a body, llhttp completes the
    // message in this same call and the pause comes at its end; only a message with a body pauses here.
    if (skipBody === true) return 1;
    if (framing === 'none') return 0;
    this.#stop = 'head';
    return ERROR.PAUSED!;
  }

  onBody(bytes: Buffer): number {
    this.#handlers.onBody?.(bytes);
    return 0;
  }

  onMessageComplete(): number {
    this.#phase = 'head';
    this.#headBytes = 0;
    this.#handlers.onMessageComplete?.();
    this.#stop = 'message';
    return ERROR.PAUSED!;
  }

  #pushHeader(): void {
    this.#headers.push(this.#field, trimOws(this.#value));
    this.#field = '';
    this.#value = '';
    this.#inValue = false;
  }

  /** A chunked body's trailer section is read (and dropped): its fields count against the head limit too. */
  #countTrailer(bytes: number): number {
    if (this.#phase === 'head') return 0;
    this.#trailerBytes += bytes;
    return this.#trailerBytes > this.#maxHeadBytes
      ? this.#refuse('head-too-large', `a trailer section over ${this.#maxHeadBytes} bytes`)
      : 0;
  }

  #refuse(reason: string, detail: string): number {
    this.#refusal ??= new HttpFramingError(this.#kind, reason, detail);
    return -1;
  }
}

// RFC 9112 §3.2.3: a CONNECT target is authority-form, host and a port.
const CONNECT_TARGET = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+):[0-9]{1,5}$/;
// RFC 3986 §3.2.2–3.2.3: host (IP-literal or reg-name, percent-encoding allowed) and an optional port. Nothing else,
// so a Host that a Unicode-aware trim, a decoder or a URL parser could read as another name is refused.
const AUTHORITY = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]{1,5})?$/;
// RFC 9110 §5.6.2.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

interface FramingFields {
  readonly contentLength: number | undefined;
  readonly lengths: number;
  readonly transferEncoding: string | undefined;
  readonly hosts: number;
  readonly host: string;
  readonly connection: readonly string[];
  readonly upgradeField: boolean;
}

/** What each early refusal of readFramingFields says, by reason. */
const REFUSALS = {
  'content-length': 'a Content-Length that is not a decimal number',
  'transfer-encoding': 'more than one Transfer-Encoding field',
  connection: 'a Connection option that is not a token',
} as const;

/** The fields that decide framing, read once from a head's field list; a string names why the head is refused. */
function readFramingFields(headers: readonly string[]): FramingFields | keyof typeof REFUSALS {
  let contentLength: number | undefined;
  let lengths = 0;
  let transferEncoding: string | undefined;
  let hosts = 0;
  let host = '';
  let connection: string[] | undefined;
  let upgradeField = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = (headers[i] as string).toLowerCase();
    const value = headers[i + 1] as string;
    if (name === 'content-length') {
      lengths++;
      if (!/^[0-9]{1,15}$/.test(value)) return 'content-length';
      contentLength = Number(value);
    } else if (name === 'transfer-encoding') {
      if (transferEncoding !== undefined) return 'transfer-encoding';
      transferEncoding = value.toLowerCase();
    } else if (name === 'host') {
      hosts++;
      host = value;
    } else if (name === 'connection') {
      // RFC 9110 §5.6.1: a list of tokens; empty elements are allowed and mean nothing.
      for (const element of value.split(',')) {
        const option = trimOws(element);
        if (option === '') continue;
        if (!TOKEN.test(option)) return 'connection';
        (connection ??= []).push(option.toLowerCase());
      }
    } else if (name === 'upgrade') upgradeField = true;
  }
  return { contentLength, lengths, transferEncoding, hosts, host, connection: connection ?? NO_OPTIONS, upgradeField };
}

const NO_OPTIONS: readonly string[] = [];

const EMPTY = Buffer.alloc(0);
