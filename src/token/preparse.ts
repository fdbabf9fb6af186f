/**
 * Cheap structural checks on a compact JWS before any key lookup or
 * signature work, so malformed or hostile input costs a few string
 * operations. Returns the decoded header and claims so the verifier can
 * choose the issuer's key set by the (still unverified) `iss`.
 */
import type { JWSHeaderParameters } from 'jose';
import { ACCESS_TOKEN_JWT_TYP } from '../core/token-types.ts';
import { TokenAlgNotAllowedError, TokenMalformedError, TokenTooLargeError, TokenWrongTypError } from './errors.ts';
import { normalizeTyp } from './issuer-profile.ts';
import { parseJsonObject } from './strict-json.ts';

export interface PreparsedToken {
  readonly header: Readonly<JWSHeaderParameters>;
  /** Unverified: only for routing to a key set. */
  readonly payload: Readonly<Record<string, unknown>>;
}

export interface PreparseOptions {
  readonly maxTokenBytes: number;
  readonly algorithms: ReadonlySet<string>;
  /** False: the caller checks `typ` itself, against the profile of the issuer the claims name. Default true (`at+jwt`). */
  readonly checkTyp?: boolean;
}

const COMPACT_CHARSET = /^[A-Za-z0-9_.-]+$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

export function preparseToken(token: string, options: PreparseOptions): PreparsedToken {
  const [headerSegment, payloadSegment] = splitCompactJws(token, options.maxTokenBytes);
  const header = decodeObject(headerSegment, 'header') as JWSHeaderParameters;
  checkHeader(header, options.algorithms, options.checkTyp ?? true);
  const payload = decodeObject(payloadSegment, 'claims set');
  return { header, payload };
}

/**
 * RFC 7515 §7.1 compact serialization, strictly: three non-empty segments of
 * canonical base64url. Only one spelling of a token verifies, so a cache
 * keyed by the token cannot be bypassed by re-encoding it.
 */
export function splitCompactJws(token: string, maxTokenBytes: number): [string, string, string] {
  // Length in UTF-16 units bounds the byte length from below; anything non-ASCII fails the charset check next.
  if (token.length > maxTokenBytes) {
    throw new TokenTooLargeError(`expected a token of at most ${maxTokenBytes} bytes, got ${token.length}`);
  }
  if (!COMPACT_CHARSET.test(token))
    throw new TokenMalformedError('expected a compact JWS of base64url segments separated by dots');
  const segments = token.split('.');
  if (segments.length !== 3 || segments.some((s) => s === '')) {
    throw new TokenMalformedError(`expected three non-empty segments, got ${segments.length}`);
  }
  const names = ['header', 'claims set', 'signature'];
  // The charset test above admitted only the alphabet and the dots.
  segments.forEach((segment, i) => {
    if (!hasCanonicalTail(segment)) throw new TokenMalformedError(`expected canonical base64url in the ${names[i]}`);
  });
  return segments as [string, string, string];
}

function checkHeader(header: JWSHeaderParameters, algorithms: ReadonlySet<string>, checkTyp: boolean): void {
  const { alg, typ } = header;
  if (typeof alg !== 'string') throw new TokenMalformedError('expected an alg header parameter');
  // RFC 8725 §3.1: the unsecured JWS is never acceptable here, however it is spelled.
  if (alg.toLowerCase() === 'none' || !algorithms.has(alg)) {
    throw new TokenAlgNotAllowedError(
      `expected alg to be one of ${[...algorithms].join(', ')}, got ${JSON.stringify(alg.slice(0, 20))}`,
    );
  }
  // RFC 7515 §4.1.11: a recipient that does not understand a critical extension MUST reject; baton understands none.
  if ('crit' in header) throw new TokenMalformedError('expected no crit header parameter');
  // RFC 7797 unencoded payloads change what is signed; access tokens never use them.
  if ('b64' in header) throw new TokenMalformedError('expected no b64 header parameter');
  // RFC 9068 §2.1 / §4: resource servers MUST check typ, compared per RFC 7515 §4.1.9.
  if (checkTyp && (typeof typ !== 'string' || normalizeTyp(typ) !== ACCESS_TOKEN_JWT_TYP)) {
    throw new TokenWrongTypError(
      `expected typ at+jwt, got ${typeof typ === 'string' ? JSON.stringify(typ.slice(0, 40)) : 'none'}`,
    );
  }
}

const BASE64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const BASE64URL_CHARSET = /^[A-Za-z0-9_-]*$/;

/**
 * RFC 4648 §3.5 canonical encoding, unpadded (RFC 7515 §2): only the
 * base64url alphabet, no length that leaves a lone character, and the bits
 * a final partial group does not use all zero. Exactly the strings that
 * survive a decode and re-encode unchanged, without decoding.
 */
export function isCanonicalBase64url(segment: string): boolean {
  return BASE64URL_CHARSET.test(segment) && hasCanonicalTail(segment);
}

/** The length and unused-bit checks alone, for a segment already known to be in the alphabet. */
function hasCanonicalTail(segment: string): boolean {
  const rest = segment.length % 4;
  if (rest === 0) return true;
  if (rest === 1) return false;
  const last = BASE64URL_ALPHABET.indexOf(segment.charAt(segment.length - 1));
  // 2 characters carry 12 bits for one byte (4 unused), 3 carry 18 bits for two bytes (2 unused).
  return (last & (rest === 2 ? 0b1111 : 0b11)) === 0;
}

function decodeObject(segment: string, what: string): Record<string, unknown> {
  let text: string;
  try {
    text = utf8.decode(Buffer.from(segment, 'base64url'));
  } catch {
    throw new TokenMalformedError(`expected UTF-8 JSON in the ${what}`);
  }
  const parsed = parseJsonObject(text);
  if (!parsed.ok) {
    const why = parsed.reason === 'duplicate-member' ? 'without duplicate member names' : 'that is a JSON object';
    throw new TokenMalformedError(`expected a ${what} ${why}`);
  }
  return parsed.value;
}
