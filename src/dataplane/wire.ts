/**
 * Every byte of an HTTP/1.1 head that the data plane writes is written
 * here: request lines, status lines, field lines, the framing fields and
 * the blank line (RFC 9112 §2–§6). Nothing else in src/dataplane/ builds a
 * head by hand.
 *
 * Framing fields (`Content-Length`, `Transfer-Encoding`, `Connection`,
 * `Keep-Alive`, `Host`) are never copied from the message being passed on:
 * callers hand over a field list that `endToEndHeaders` below has already
 * stripped of them, and the framing the data plane itself decided is
 * written from a `Framing` value. So what the next hop reads as the
 * message's end is exactly where baton's own parser put it (issue #23: a
 * `Connection: Content-Length` that survived a filter once made an app read
 * a request body as a second request).
 *
 * Hop-by-hop fields (RFC 9110 §7.6.1) describe one connection, so a proxy
 * drops them, and every field its `Connection` header names, before passing
 * a message on. The framing fields are dropped too, always, and written
 * again here from the framing baton's own parser decided. The parser has
 * already refused a `Connection` option that names one of them
 * (./http1-parser.ts, reason `connection`); dropping them as well means a
 * filter bug can lose a field but never a message boundary.
 */
import { STATUS_CODES } from 'node:http';

export const CRLF = '\r\n';

/**
 * How the body of a message written here is delimited. `length` writes
 * `Content-Length: n` (n may be 0); `chunked` writes `Transfer-Encoding:
 * chunked`; `close` writes nothing (a response whose body ends with the
 * connection); `none` writes nothing (no body, and none implied).
 */
export type Framing =
  | { readonly kind: 'none' }
  | { readonly kind: 'length'; readonly length: number }
  | { readonly kind: 'chunked' }
  | { readonly kind: 'close' };

export const NO_BODY: Framing = { kind: 'none' };
export const CHUNKED: Framing = { kind: 'chunked' };
export const UNTIL_CLOSE: Framing = { kind: 'close' };

/** `Content-Length: n`. */
export function lengthOf(length: number): Framing {
  return { kind: 'length', length };
}

/** Whether the connection stays open after this message, as the head says it. */
export type Persistence =
  | { readonly kind: 'close' }
  /** HTTP/1.1 keeps alive by default; an HTTP/1.0 peer is told, and both are told the idle timeout. */
  | { readonly kind: 'keep-alive'; readonly http10: boolean; readonly timeoutSeconds: number }
  /** Upstream requests: nothing said, HTTP/1.1's default (persistent) applies. */
  | { readonly kind: 'default' };

const DEFAULT_PERSISTENCE: Persistence = { kind: 'default' };

/** A request head, ready for the socket (latin1): request line, `Host` first (RFC 9112 §3.2), the fields, framing, blank line. */
export function requestHead(
  method: string,
  target: string,
  host: string,
  fields: readonly string[],
  framing: Framing,
): string {
  let head = `${method} ${target} HTTP/1.1${CRLF}host: ${host}${CRLF}`;
  head += fieldLines(fields);
  return head + framingLines(framing, DEFAULT_PERSISTENCE) + CRLF;
}

/** A response head, ready for the socket (latin1): status line, the fields, framing and persistence, blank line. */
export function responseHead(
  status: number,
  fields: readonly string[],
  framing: Framing,
  persistence: Persistence,
): string {
  return statusLine(status) + fieldLines(fields) + framingLines(framing, persistence) + CRLF;
}

/** The answer that opens a CONNECT tunnel (RFC 9110 §9.3.6: a 2xx to CONNECT carries no framing fields). */
export const TUNNEL_ESTABLISHED = `HTTP/1.1 200 Connection Established${CRLF}${CRLF}`;

/** An interim `100 Continue` (RFC 9110 §15.2.1). */
export const CONTINUE = `HTTP/1.1 100 Continue${CRLF}${CRLF}`;

function statusLine(status: number): string {
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}${CRLF}`;
}

function fieldLines(fields: readonly string[]): string {
  let lines = '';
  for (let i = 0; i + 1 < fields.length; i += 2) lines += `${fields[i] as string}: ${fields[i + 1] as string}${CRLF}`;
  return lines;
}

function framingLines(framing: Framing, persistence: Persistence): string {
  let lines =
    framing.kind === 'length'
      ? `content-length: ${framing.length}${CRLF}`
      : framing.kind === 'chunked'
        ? `transfer-encoding: chunked${CRLF}`
        : '';
  if (persistence.kind === 'close') lines += `connection: close${CRLF}`;
  else if (persistence.kind === 'keep-alive')
    lines += `${persistence.http10 ? `connection: keep-alive${CRLF}` : ''}keep-alive: timeout=${persistence.timeoutSeconds}${CRLF}`;
  return lines;
}

/** A chunk's size line (RFC 9112 §7.1): hex length, no extensions. */
export function chunkSizeLine(length: number): string {
  return `${length.toString(16)}${CRLF}`;
}

/** The last chunk and an empty trailer section: trailers are never passed on. */
export const LAST_CHUNK = `0${CRLF}${CRLF}`;

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

/**
 * A field value without leading and trailing whitespace as RFC 9110 §5.5
 * defines it: SP and HTAB only. JavaScript's `trim()` also strips U+00A0
 * and other Unicode spaces, which once turned `chunked\xa0` into `chunked`
 * for one check while the next hop read it otherwise.
 */
export function trimOws(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && isOws(value.charCodeAt(start))) start++;
  while (end > start && isOws(value.charCodeAt(end - 1))) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}

function isOws(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

// --- the fields that go on ---

// RFC 9110 §7.6.1, plus the pre-standard ones proxies still see.
const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
]);
// Written from the data plane's own framing (below), per direction.
const REQUEST_FRAMING: ReadonlySet<string> = new Set(['content-length', 'host']);
const RESPONSE_FRAMING: ReadonlySet<string> = new Set(['content-length']);

/**
 * A head's fields minus hop-by-hop fields, framing fields and those its
 * `Connection` names, in the order received; `alsoDrop` (given the
 * lower-cased name) drops more, as a hop's own rules say.
 */
export function endToEndHeaders(
  head: { readonly rawHeaders: readonly string[]; readonly connection: readonly string[] },
  kind: 'request' | 'response',
  alsoDrop?: (lowerName: string) => boolean,
): string[] {
  const framing = kind === 'request' ? REQUEST_FRAMING : RESPONSE_FRAMING;
  const named = head.connection;
  const raw = head.rawHeaders;
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    if (
      HOP_BY_HOP.has(name) ||
      framing.has(name) ||
      (named.length > 0 && named.includes(name)) ||
      alsoDrop?.(name) === true
    )
      continue;
    out.push(raw[i] as string, raw[i + 1] as string);
  }
  return out;
}
