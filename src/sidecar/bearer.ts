/**
 * The bearer token of a request (RFC 6750 §2.1), checked for size and
 * alphabet before any parsing: a JWS in compact form is base64url and dots
 * only, so anything else is refused without reaching a JSON parser.
 */
import type { RequestHead } from '../dataplane/exchange.ts';
import { BadRequestError } from '../core/errors.ts';
import { UnauthenticatedError } from './errors.ts';

const JWS_COMPACT = /^[A-Za-z0-9_.-]+$/;
const BEARER_PREFIX = /^bearer +/i;

/** The token, or undefined when the request carries no Authorization at all. */
export function bearerToken(req: RequestHead, maxTokenBytes: number): string | undefined {
  const authorization = req.headers.authorization;
  if (authorization === undefined) return undefined;
  if (countAuthorization(req.rawHeaders) > 1) {
    // Two credentials: which one a later hop would read is not ours to guess.
    throw new BadRequestError('expected at most one Authorization header, got several');
  }
  const prefix = BEARER_PREFIX.exec(authorization);
  if (prefix === null) throw new UnauthenticatedError('expected the Bearer authentication scheme (RFC 6750 §2.1)');
  const token = authorization.slice(prefix[0].length);
  if (token.length > maxTokenBytes) {
    throw new UnauthenticatedError(`expected a bearer token of at most ${maxTokenBytes} bytes, got ${token.length}`, { extensions: { reason: 'too_large' } });
  }
  if (!JWS_COMPACT.test(token)) throw new UnauthenticatedError('expected a bearer token of base64url characters and dots (a JWS in compact form)');
  return token;
}

function countAuthorization(rawHeaders: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if ((rawHeaders[i] as string).length === 13 && (rawHeaders[i] as string).toLowerCase() === 'authorization') n++;
  return n;
}
