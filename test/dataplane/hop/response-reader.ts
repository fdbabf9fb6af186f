/**
 * Reads the responses a client received on one connection, for the hop
 * harness's request-direction cases: how many final answers came, which of
 * them are baton's own refusals, and what each origin answer echoed back.
 * Framing follows RFC 9112 §6.3 for responses (1xx, 204, 304 and answers to
 * HEAD have no body; chunked as the final coding; Content-Length; else to
 * the close). Bytes that do not frame stop the reading: what was read
 * before them stands.
 */
import { trimOws } from './reference-framer.ts';

export interface ReadResponse {
  readonly status: number;
  /** Lower-case names. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: Buffer;
}

export interface ResponseReading {
  /** Final answers (1xx skipped), in order. */
  readonly responses: readonly ReadResponse[];
  /** Bytes after the last whole answer: an answer still arriving, or bytes that do not frame. */
  readonly rest: number;
  /** The bytes stopped framing: everything after `responses` is garbage. */
  readonly garbled: boolean;
}

export function readResponses(
  bytes: Buffer,
  options: { closed: boolean; heads?: (index: number) => boolean },
): ResponseReading {
  const responses: ReadResponse[] = [];
  let at = 0;
  while (at < bytes.length) {
    const end = bytes.indexOf('\r\n\r\n', at, 'latin1');
    if (end === -1) break;
    const [statusLine = '', ...lines] = bytes.toString('latin1', at, end).split('\r\n');
    const status = /^HTTP\/1\.[01] ([1-9][0-9]{2})(?: |$)/.exec(statusLine);
    if (status === null) return { responses, rest: bytes.length - at, garbled: true };
    const code = Number(status[1]);
    const headers = lines.map((line): readonly [string, string] => {
      const colon = line.indexOf(':');
      return colon === -1
        ? [line.toLowerCase(), '']
        : [line.slice(0, colon).toLowerCase(), trimOws(line.slice(colon + 1))];
    });
    const start = end + 4;
    if (code < 200) {
      at = start;
      continue;
    }
    const field = (name: string): string | undefined => headers.find(([n]) => n === name)?.[1];
    const encoding = field('transfer-encoding');
    const length = field('content-length');
    let next: number | undefined;
    let body: Buffer = Buffer.alloc(0);
    if (code === 204 || code === 304 || options.heads?.(responses.length) === true) next = start;
    else if (encoding !== undefined && /(^|,)\s*chunked\s*$/i.test(encoding)) {
      const chunked = dechunk(bytes, start);
      if (chunked === 'garbled') return { responses, rest: bytes.length - at, garbled: true };
      if (chunked !== undefined) [next, body] = chunked;
    } else if (encoding === undefined && length !== undefined) {
      if (!/^[0-9]+$/.test(length)) return { responses, rest: bytes.length - at, garbled: true };
      if (start + Number(length) <= bytes.length) next = start + Number(length);
    } else if (options.closed) next = bytes.length;
    if (next === undefined) break;
    if (body.length === 0) body = bytes.subarray(start, next);
    responses.push({ status: code, headers, body });
    at = next;
  }
  return { responses, rest: bytes.length - at, garbled: false };
}

function dechunk(bytes: Buffer, from: number): [number, Buffer] | undefined | 'garbled' {
  const parts: Buffer[] = [];
  for (let at = from; ;) {
    const eol = bytes.indexOf('\r\n', at, 'latin1');
    if (eol === -1) return undefined;
    const size = /^([0-9A-Fa-f]+)[ \t]*(;.*)?$/.exec(bytes.toString('latin1', at, eol));
    if (size === null) return 'garbled';
    const n = parseInt(size[1] as string, 16);
    if (n === 0) {
      const end = bytes.indexOf('\r\n\r\n', eol, 'latin1');
      return end === -1 ? undefined : [end + 4, Buffer.concat(parts)];
    }
    if (eol + 2 + n + 2 > bytes.length) return undefined;
    parts.push(bytes.subarray(eol + 2, eol + 2 + n));
    at = eol + 2 + n + 2;
  }
}

/** A baton refusal: a problem document (RFC 9457) carrying one of baton's codes. */
export interface BatonRefusal {
  readonly status: number;
  readonly code: string;
  readonly reason: string | undefined;
}

export function batonRefusalOf(response: ReadResponse): BatonRefusal | undefined {
  const type = response.headers.find(([n]) => n === 'content-type')?.[1];
  if (type === undefined || !type.startsWith('application/problem+json')) return undefined;
  // The answer to HEAD has no body: the type alone says it is baton's (no origin here answers problem+json).
  if (response.body.length === 0)
    return { status: response.status, code: 'BATON_(answer to HEAD, no body)', reason: undefined };
  try {
    const problem = JSON.parse(response.body.toString('utf8')) as { code?: unknown; reason?: unknown };
    if (typeof problem.code !== 'string' || !problem.code.startsWith('BATON_')) return undefined;
    return {
      status: response.status,
      code: problem.code,
      reason: typeof problem.reason === 'string' ? problem.reason : undefined,
    };
  } catch {
    return undefined;
  }
}
