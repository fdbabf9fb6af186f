/**
 * How a sidecar error is written to the wire: an RFC 9457 problem document,
 * plus the RFC 6750 §3 `WWW-Authenticate` challenge on 401s. The causes live
 * in src/sidecar/errors.ts, src/token/errors.ts, src/sidecar/exchange/errors.ts
 * and src/core/errors.ts; any `BatonError` is written the same way.
 */
import type { Exchange } from '../dataplane/exchange.ts';
import { type BatonError, InternalError, isBatonError } from '../core/errors.ts';
import { PROBLEM_CONTENT_TYPE, retryAfterFor, toProblem } from '../core/problem.ts';
import { MethodNotAllowedError, StepUpRequiredError } from './errors.ts';

export const REALM = 'baton';

/**
 * The `WWW-Authenticate` value for a 401, or undefined for other statuses.
 * RFC 6750 §3.1: a request with no token at all gets the bare challenge,
 * without an error code. RFC 9470 §3: a step-up names the acceptable `acr`s.
 */
export function challengeFor(error: BatonError, tokenPresent: boolean): string | undefined {
  if (error.status !== 401) return undefined;
  if (error.code === StepUpRequiredError.code) {
    const acrValues = error.extensions.acr_values;
    const acr = typeof acrValues === 'string' ? `, acr_values="${quoted(acrValues)}"` : '';
    return `Bearer realm="${REALM}", error="insufficient_user_authentication", error_description="a stronger authentication is required"${acr}`;
  }
  if (!tokenPresent) return `Bearer realm="${REALM}"`;
  return `Bearer realm="${REALM}", error="invalid_token"`;
}

// RFC 9110 §5.6.4 quoted-string: a backslash or a quote must be escaped.
function quoted(value: string): string {
  return value.replace(/[\\"]/g, (c) => `\\${c}`).replace(/[^\x20-\x7e]/g, '');
}

/** Any thrown value as a `BatonError`, without ever echoing a foreign message (it could hold a token). */
export function asBatonError(error: unknown): BatonError {
  return isBatonError(error) ? error : new InternalError('the sidecar failed to handle this request', { cause: error });
}

/** Writes `error` as a problem document; when the response has started, cuts the connection instead. */
export function sendProblem(exchange: Exchange, error: BatonError, tokenPresent: boolean, instance?: string): void {
  if (exchange.closed) return;
  if (exchange.headersSent) {
    exchange.destroy();
    return;
  }
  exchange.respond(error.status, problemHeaders(error, tokenPresent), JSON.stringify(toProblem(error, instance)));
}

/** The head of a problem response, Content-Length aside: a flat `[name, value, …]` list. */
export function problemHeaders(error: BatonError, tokenPresent: boolean): string[] {
  const headers = ['content-type', PROBLEM_CONTENT_TYPE, 'cache-control', 'no-store'];
  const challenge = challengeFor(error, tokenPresent);
  if (challenge !== undefined) headers.push('www-authenticate', challenge);
  if (error.code === MethodNotAllowedError.code) headers.push('allow', 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS');
  const retry = retryAfterFor(error);
  if (retry !== undefined) headers.push('retry-after', String(retry));
  return headers;
}
