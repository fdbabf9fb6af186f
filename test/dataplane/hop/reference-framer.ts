/**
 * An HTTP/1.1 request framer written from RFC 9112 alone, for the hop
 * harness's raw-socket recorder: an oracle that shares no code with llhttp
 * (which both node:http and baton's parser are built on). It reads what the
 * grammar allows and refuses the rest, the way RFC 9112 tells a server to:
 *
 * - §2.2: lines end in CRLF; a bare CR or bare LF is refused; empty lines
 *   (CRLF, or a bare LF, which a recipient MAY take as a line end) before
 *   the request line are skipped, as the RFC says a server SHOULD.
 * - §3: `method SP request-target SP HTTP-version`, the target visible
 *   ASCII, versions 1.0 and 1.1 only; a run of spaces is taken as one SP
 *   (a MAY there); no version (HTTP/0.9) is refused.
 * - §5.1, §5.2: `field-name ":" OWS field-value OWS`, a token for the name
 *   (no whitespace before the colon), only SP and HTAB trimmed (RFC 9110
 *   §5.5), CTLs refused; obs-fold refused.
 * - RFC 9110 §7.2 / RFC 9112 §3.2: exactly one Host in HTTP/1.1.
 * - §6.3: Transfer-Encoding with Content-Length refused; a Transfer-Encoding
 *   whose final coding is not `chunked` refused (400), `chunked` twice
 *   refused, an unknown coding before it refused (501); Content-Length is
 *   1*DIGIT, one field, no list.
 * - §7.1: chunk-size 1*HEXDIG, chunk extensions after BWS `;` without CTLs,
 *   CRLF after each chunk's data exactly, a trailer section of field lines.
 *
 * Records are kept as parsed; nothing is decoded beyond the chunked coding.
 */

export type Framing = 'none' | 'length' | 'chunked';

/** One request as the framer read it. Header names and values are latin1 strings, in the order sent. */
export interface FramedRequest {
  readonly kind: 'request';
  readonly method: string;
  readonly target: string;
  readonly version: string;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly framing: Framing;
  /** The payload: chunked framing removed. */
  body: Buffer;
  trailers: Array<readonly [string, string]>;
  /** The whole body arrived. */
  complete: boolean;
  /** Bytes of the head, request line to the blank line included. */
  readonly headBytes: number;
}

/** The framer stopped: what follows on the connection is not read. */
export interface FramerRefusal {
  readonly kind: 'refused';
  readonly status: 400 | 501;
  readonly reason: string;
}

export interface FramerHandlers {
  onHead(request: FramedRequest): void;
  /** Payload bytes of the request in hand, as they arrive (a view, valid during the call). */
  onBody?(bytes: Buffer): void;
  onComplete(request: FramedRequest): void;
  onRefuse(refusal: FramerRefusal): void;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// field-value: VCHAR and obs-text, with SP / HTAB inside (RFC 9110 §5.5).
const FIELD_VALUE = /^[\x21-\x7e\x80-\xff]([ \t\x21-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?$/;
// RFC 9112 §3: one SP each; a recipient MAY take a run of spaces as the separator, as llhttp does (baton writes one).
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) +([\x21-\x7e]+) +HTTP\/(1\.[01])$/;
const HEXDIGITS = /^[0-9A-Fa-f]{1,15}$/;
const MAX_HEAD = 1024 * 1024;

class Refused extends Error {
  readonly status: 400 | 501;
  readonly reason: string;
  constructor(reason: string, status: 400 | 501 = 400) {
    super(reason);
    this.reason = reason;
    this.status = status;
  }
}

type State =
  | { readonly at: 'head' }
  | { readonly at: 'length'; remaining: number }
  | { readonly at: 'chunk-size' }
  | { readonly at: 'chunk-data'; remaining: number }
  | { readonly at: 'chunk-crlf' }
  | { readonly at: 'trailers' }
  | { readonly at: 'dead' };

export class RequestFramer {
  readonly #handlers: FramerHandlers;
  #buffer: Buffer = Buffer.alloc(0);
  #state: State = { at: 'head' };
  #request: FramedRequest | undefined;

  constructor(handlers: FramerHandlers) {
    this.#handlers = handlers;
  }

  /** Bytes received and not yet part of a framed message: a head still arriving, or what followed a refusal. */
  get pending(): number {
    return this.#state.at === 'head' ? this.#buffer.length : 0;
  }

  get refused(): boolean {
    return this.#state.at === 'dead';
  }

  /** Reads nothing more (the connection is closing): bytes already in hand and any after are ignored. */
  stop(): void {
    this.#state = { at: 'dead' };
    this.#buffer = Buffer.alloc(0);
  }

  push(chunk: Buffer): void {
    if (this.#state.at === 'dead') return;
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    try {
      while (this.#step());
    } catch (error) {
      if (!(error instanceof Refused)) throw error;
      this.#state = { at: 'dead' };
      this.#buffer = Buffer.alloc(0);
      this.#handlers.onRefuse({ kind: 'refused', status: error.status, reason: error.reason });
    }
  }

  /** One step of parsing; false when more bytes are needed. */
  #step(): boolean {
    const state = this.#state;
    switch (state.at) {
      case 'head':
        return this.#head();
      case 'length': {
        if (this.#buffer.length === 0) return false;
        const take = Math.min(state.remaining, this.#buffer.length);
        this.#append(this.#buffer.subarray(0, take));
        this.#buffer = this.#buffer.subarray(take);
        state.remaining -= take;
        if (state.remaining === 0) this.#complete();
        return true;
      }
      case 'chunk-size': {
        const line = this.#line();
        if (line === undefined) return false;
        // chunk-size [ chunk-ext ]: chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
        const match = /^([^;\t ]*)([\t ]*;.*)?$/.exec(line);
        const size = match?.[1] ?? '';
        if (!HEXDIGITS.test(size)) throw new Refused('chunk-size');
        if (match?.[2] !== undefined && hasControl(match[2])) throw new Refused('chunk-ext');
        const n = parseInt(size, 16);
        this.#state = n === 0 ? { at: 'trailers' } : { at: 'chunk-data', remaining: n };
        return true;
      }
      case 'chunk-data': {
        if (this.#buffer.length === 0) return false;
        const take = Math.min(state.remaining, this.#buffer.length);
        this.#append(this.#buffer.subarray(0, take));
        this.#buffer = this.#buffer.subarray(take);
        state.remaining -= take;
        if (state.remaining === 0) this.#state = { at: 'chunk-crlf' };
        return true;
      }
      case 'chunk-crlf': {
        if (this.#buffer.length < 2)
          return this.#buffer.length === 1 && this.#buffer[0] !== 0x0d ? this.#fail('chunk-data-end') : false;
        if (this.#buffer[0] !== 0x0d || this.#buffer[1] !== 0x0a) throw new Refused('chunk-data-end');
        this.#buffer = this.#buffer.subarray(2);
        this.#state = { at: 'chunk-size' };
        return true;
      }
      case 'trailers': {
        const line = this.#line();
        if (line === undefined) return false;
        if (line === '') {
          this.#complete();
          return true;
        }
        this.#request?.trailers.push(fieldLine(line));
        return true;
      }
      case 'dead':
        return false;
    }
  }

  #fail(reason: string): never {
    throw new Refused(reason);
  }

  /** A CRLF-ended line off the buffer, or undefined while it is incomplete. A bare CR or LF is refused. */
  #line(): string | undefined {
    const buffer = this.#buffer;
    const lf = buffer.indexOf(0x0a);
    const cr = buffer.indexOf(0x0d);
    if (cr !== -1 && cr + 1 < buffer.length && buffer[cr + 1] !== 0x0a) throw new Refused('bare-cr');
    if (lf === -1) {
      if (buffer.length > MAX_HEAD) throw new Refused('line-too-long');
      return undefined;
    }
    if (lf === 0 || buffer[lf - 1] !== 0x0d) throw new Refused('bare-lf');
    const line = buffer.toString('latin1', 0, lf - 1);
    this.#buffer = buffer.subarray(lf + 1);
    return line;
  }

  #head(): boolean {
    // §2.2: a server SHOULD ignore at least one empty line before the request line (and MAY take a bare LF as a line end).
    for (;;) {
      if (this.#buffer.length >= 2 && this.#buffer[0] === 0x0d && this.#buffer[1] === 0x0a)
        this.#buffer = this.#buffer.subarray(2);
      else if (this.#buffer.length >= 1 && this.#buffer[0] === 0x0a) this.#buffer = this.#buffer.subarray(1);
      else break;
    }
    const buffer = this.#buffer;
    const end = buffer.indexOf('\r\n\r\n', 0, 'latin1');
    if (end === -1) {
      // A bare CR or LF anywhere before the end refuses the head at once; otherwise wait for more.
      const text = buffer.toString('latin1');
      if (/\r[^\n]|(^|[^\r])\n/.test(text)) throw new Refused(/\r[^\n]/.test(text) ? 'bare-cr' : 'bare-lf');
      if (buffer.length > MAX_HEAD) throw new Refused('head-too-large');
      return false;
    }
    const head = buffer.toString('latin1', 0, end);
    this.#buffer = buffer.subarray(end + 4);
    const lines = head.split('\r\n');
    for (const line of lines) if (/[\r\n]/.test(line)) throw new Refused(line.includes('\r') ? 'bare-cr' : 'bare-lf');
    const requestLine = REQUEST_LINE.exec(lines[0] as string);
    if (requestLine === null) throw new Refused('request-line');
    const headers = lines.slice(1).map(fieldLine);
    const request = this.#frame(
      requestLine[1] as string,
      requestLine[2] as string,
      requestLine[3] as string,
      headers,
      end + 4,
    );
    this.#request = request;
    this.#handlers.onHead(request);
    if (request.framing === 'none') this.#complete();
    return true;
  }

  #frame(
    method: string,
    target: string,
    version: string,
    headers: Array<readonly [string, string]>,
    headBytes: number,
  ): FramedRequest {
    const lower = (name: string): Array<readonly [string, string]> => headers.filter(([n]) => n.toLowerCase() === name);
    const hosts = lower('host');
    if (version === '1.1' ? hosts.length !== 1 : hosts.length > 1) throw new Refused('host');
    const lengths = lower('content-length');
    const encodings = lower('transfer-encoding');
    let framing: Framing = 'none';
    let length = 0;
    if (encodings.length > 0) {
      if (lengths.length > 0) throw new Refused('content-length-with-transfer-encoding');
      // #rule lists: empty elements are ignored (RFC 9110 §5.6.1.2).
      const codings = encodings
        .flatMap(([, value]) => value.split(','))
        .map((coding) => trimOws(coding).toLowerCase())
        .filter((coding) => coding !== '');
      if (codings.at(-1) !== 'chunked') throw new Refused('transfer-encoding-not-chunked');
      if (codings.filter((coding) => coding === 'chunked').length > 1) throw new Refused('chunked-twice');
      if (codings.length > 1) throw new Refused('transfer-coding-unsupported', 501);
      framing = 'chunked';
    } else if (lengths.length > 0) {
      if (lengths.length > 1) throw new Refused('content-length-repeated');
      const value = (lengths[0] as readonly [string, string])[1];
      if (!/^[0-9]{1,15}$/.test(value)) throw new Refused('content-length-value');
      length = Number(value);
      framing = length === 0 ? 'none' : 'length';
    }
    this.#state =
      framing === 'length'
        ? { at: 'length', remaining: length }
        : framing === 'chunked'
          ? { at: 'chunk-size' }
          : { at: 'head' };
    return {
      kind: 'request',
      method,
      target,
      version,
      headers,
      framing,
      body: Buffer.alloc(0),
      trailers: [],
      complete: false,
      headBytes,
    };
  }

  #append(bytes: Buffer): void {
    const request = this.#request as FramedRequest;
    request.body = Buffer.concat([request.body, bytes]);
    this.#handlers.onBody?.(bytes);
  }

  #complete(): void {
    const request = this.#request as FramedRequest;
    request.complete = true;
    this.#state = { at: 'head' };
    this.#request = undefined;
    this.#handlers.onComplete(request);
  }
}

/** OWS is SP and HTAB only (RFC 9110 §5.6.3): String.prototype.trim() would strip \xa0 and \x85 too. */
export function trimOws(text: string): string {
  return text.replace(/^[ \t]+|[ \t]+$/g, '');
}

/** A CTL other than HTAB (RFC 5234 §B.1): never part of a field value or a chunk extension. */
function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return true;
  }
  return false;
}

/** `name: value` with only SP / HTAB trimmed; obs-fold, whitespace before the colon and CTLs refused. */
function fieldLine(line: string): readonly [string, string] {
  if (line.startsWith(' ') || line.startsWith('\t')) throw new Refused('obs-fold');
  const colon = line.indexOf(':');
  if (colon === -1) throw new Refused('field-without-colon');
  const name = line.slice(0, colon);
  if (!TOKEN.test(name)) throw new Refused('field-name');
  const value = trimOws(line.slice(colon + 1));
  if (value !== '' && !FIELD_VALUE.test(value)) throw new Refused('field-value');
  return [name, value];
}
