/**
 * The sidecar's error causes (DESIGN.md, "Sidecar": errors) and how one is
 * written to the wire: an RFC 9457 problem document, plus the RFC 6750 §3
 * `WWW-Authenticate` challenge on 401s. Token verification causes come from
 * src/token/errors.ts and the exchange causes (BATON_STS_UNAVAILABLE,
 * refusals) from src/sidecar/exchange/errors.ts;
 * any `BatonError` is written the same way.
 */
import type { ServerResponse } from 'node:http';
import { type BatonError, defineError, isBatonError } from '../core/errors.ts';
import { PROBLEM_CONTENT_TYPE, toProblem } from '../core/problem.ts';

export const BadRequestError = defineError({ code: 'BATON_BAD_REQUEST', status: 400, title: 'Bad request', oauthError: 'invalid_request' });
export const AmbiguousPathError = defineError({ code: 'BATON_AMBIGUOUS_PATH', status: 400, title: 'Ambiguous request path', oauthError: 'invalid_request' });
export const UnauthenticatedError = defineError({ code: 'BATON_UNAUTHENTICATED', status: 401, title: 'Authentication required', oauthError: 'invalid_token' });
export const StepUpRequiredError = defineError({ code: 'BATON_STEP_UP_REQUIRED', status: 401, title: 'Stronger user authentication required', oauthError: 'insufficient_user_authentication' });
export const PolicyDeniedError = defineError({ code: 'BATON_POLICY_DENIED', status: 403, title: 'Refused by the call-graph policy' });
export const UnknownServiceError = defineError({ code: 'BATON_UNKNOWN_SERVICE', status: 403, title: 'Unknown target service' });
export const MethodNotAllowedError = defineError({ code: 'BATON_METHOD_NOT_ALLOWED', status: 405, title: 'Method not allowed' });
export const RequestBodyTimeoutError = defineError({ code: 'BATON_REQUEST_BODY_TIMEOUT', status: 408, title: 'Request body not received in time' });
export const FairShareExceededError = defineError({ code: 'BATON_FAIR_SHARE_EXCEEDED', status: 429, title: 'This caller holds its share of the requests in flight' });
export const UpstreamTimeoutError = defineError({ code: 'BATON_UPSTREAM_TIMEOUT', status: 504, title: 'Upstream did not answer in time' });
export const UpstreamUnreachableError = defineError({ code: 'BATON_UPSTREAM_UNREACHABLE', status: 502, title: 'Upstream unreachable' });
/** mtls: the upstream's certificate names another SPIFFE ID than the target service's; nothing was sent. */
export const UpstreamIdentityMismatchError = defineError({ code: 'BATON_UPSTREAM_IDENTITY_MISMATCH', status: 502, title: 'Upstream presented a certificate for another service' });
/** mtls: the TLS handshake with the upstream failed (untrusted or expired certificate, or no TLS at all); nothing was sent. */
export const UpstreamTlsError = defineError({ code: 'BATON_UPSTREAM_TLS_FAILED', status: 502, title: 'TLS handshake with the upstream failed' });
/** mtls: this sidecar has no valid workload certificate, so it sends nothing (never plaintext instead). */
export const IdentityUnavailableError = defineError({ code: 'BATON_IDENTITY_UNAVAILABLE', status: 503, title: 'No valid workload identity' });
export const OverloadedError = defineError({ code: 'BATON_OVERLOADED', status: 503, title: 'Too many requests in flight' });
export const HandlesExhaustedError = defineError({ code: 'BATON_HANDLES_EXHAUSTED', status: 503, title: 'No room for another baton-context handle' });
export const NotReadyError = defineError({ code: 'BATON_NOT_READY', status: 503, title: 'Sidecar not ready' });
export const InternalError = defineError({ code: 'BATON_INTERNAL', status: 500, title: 'Internal error' });

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
export function sendProblem(res: ServerResponse, error: BatonError, tokenPresent: boolean, instance?: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(toProblem(error, instance));
  const headers: Record<string, string | number> = {
    'content-type': PROBLEM_CONTENT_TYPE,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  };
  const challenge = challengeFor(error, tokenPresent);
  if (challenge !== undefined) headers['www-authenticate'] = challenge;
  if (error.code === MethodNotAllowedError.code) headers.allow = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS';
  res.writeHead(error.status, headers);
  res.end(body);
}
