/**
 * Why an access token was refused, one class per cause (STYLE rule 2).
 * Every cause but an unreachable key endpoint is the caller's problem:
 * 401 with `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 §3.1).
 * Messages name the claim or header at fault, never the token.
 */
import { type HttpError, type HttpErrorClass, defineError, isHttpError } from '../core/errors.ts';

const invalidToken = (code: string, title: string): HttpErrorClass =>
  defineError({ code, status: 401, title, oauthError: 'invalid_token' });

/** Not a compact JWS with JSON header and claims, a claim of the wrong type, or (reason `cnf`) a confirmation claim other than exactly `x5t#S256`. */
export const TokenMalformedError = invalidToken('BATON_TOKEN_MALFORMED', 'Malformed access token');
export const TokenTooLargeError = invalidToken('BATON_TOKEN_TOO_LARGE', 'Access token too large');
export const TokenUntrustedIssuerError = invalidToken(
  'BATON_TOKEN_UNTRUSTED_ISSUER',
  'Access token from an untrusted issuer',
);
export const TokenUnknownKidError = invalidToken('BATON_TOKEN_UNKNOWN_KID', 'Access token signed with an unknown key');
export const TokenBadSignatureError = invalidToken('BATON_TOKEN_BAD_SIGNATURE', 'Access token signature invalid');
export const TokenAlgNotAllowedError = invalidToken(
  'BATON_TOKEN_ALG_NOT_ALLOWED',
  'Access token signing algorithm not allowed',
);
/** Another kind of JWT than an access token; reason `id-token` for an OpenID Connect ID token. */
export const TokenWrongTypError = invalidToken('BATON_TOKEN_WRONG_TYP', 'Not a JWT access token');
export const TokenWrongAudienceError = invalidToken('BATON_TOKEN_WRONG_AUDIENCE', 'Access token for another audience');
/** Past `exp`; reason `exchanged` when the STS issued the sidecar a token with no lifetime left, because the user's own had run out. */
export const TokenExpiredError = invalidToken('BATON_TOKEN_EXPIRED', 'Access token expired');
export const TokenNotYetValidError = invalidToken('BATON_TOKEN_NOT_YET_VALID', 'Access token not yet valid');
/** The `act` chain (src/core/act-chain.ts): reason `malformed`, or `too-deep` (beyond the configured depth). */
export const TokenActInvalidError = invalidToken('BATON_TOKEN_ACT_INVALID', 'Access token actor chain invalid');
/** RFC 7662 §2.2: the issuer's introspection endpoint said `active: false` (revoked, expired or unknown). */
export const TokenInactiveError = invalidToken('BATON_TOKEN_INACTIVE', 'Access token not active');

/**
 * The issuer could not be asked: its key set (reason `jwks`) or its
 * introspection endpoint (`introspection`) did not answer, and no good copy
 * is held; a token is never taken as valid or active meanwhile. Not the
 * caller's fault, so 503, not 401.
 */
export const TokenIssuerUnavailableError = defineError({
  code: 'BATON_TOKEN_ISSUER_UNAVAILABLE',
  status: 503,
  title: 'Token issuer unavailable',
  oauthError: 'temporarily_unavailable',
});

/** The budget of introspection calls for tokens the issuer has not called active is spent (a flood of made-up tokens, or too low a budget): refused, never sent, never passed. */
export const TokenIntrospectionThrottledError = defineError({
  code: 'BATON_TOKEN_INTROSPECTION_THROTTLED',
  status: 503,
  title: 'Token introspection budget spent',
  oauthError: 'temporarily_unavailable',
});

export const TOKEN_ERROR_CODES: ReadonlySet<string> = new Set([
  TokenMalformedError.code,
  TokenTooLargeError.code,
  TokenUntrustedIssuerError.code,
  TokenUnknownKidError.code,
  TokenBadSignatureError.code,
  TokenAlgNotAllowedError.code,
  TokenWrongTypError.code,
  TokenWrongAudienceError.code,
  TokenExpiredError.code,
  TokenNotYetValidError.code,
  TokenActInvalidError.code,
  TokenInactiveError.code,
  TokenIssuerUnavailableError.code,
  TokenIntrospectionThrottledError.code,
]);

/** A `TokenError` is any of the classes above. */
export type TokenError = HttpError;

export function isTokenError(value: unknown): value is TokenError {
  return isHttpError(value) && TOKEN_ERROR_CODES.has(value.code);
}
