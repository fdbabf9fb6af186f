/**
 * Why an access token was refused, one class per cause (STYLE rule 2).
 * Every cause but an unreachable key endpoint is the caller's problem:
 * 401 with `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 §3.1).
 * Messages name the claim or header at fault, never the token.
 */
import { type HttpError, type HttpErrorClass, defineError, isHttpError } from '../core/errors.ts';

const invalidToken = (code: string, title: string): HttpErrorClass => defineError({ code, status: 401, title, oauthError: 'invalid_token' });

export const TokenMalformedError = invalidToken('BATON_TOKEN_MALFORMED', 'Malformed access token');
export const TokenTooLargeError = invalidToken('BATON_TOKEN_TOO_LARGE', 'Access token too large');
export const TokenUntrustedIssuerError = invalidToken('BATON_TOKEN_UNTRUSTED_ISSUER', 'Access token from an untrusted issuer');
export const TokenUnknownKidError = invalidToken('BATON_TOKEN_UNKNOWN_KID', 'Access token signed with an unknown key');
export const TokenBadSignatureError = invalidToken('BATON_TOKEN_BAD_SIGNATURE', 'Access token signature invalid');
export const TokenAlgNotAllowedError = invalidToken('BATON_TOKEN_ALG_NOT_ALLOWED', 'Access token signing algorithm not allowed');
export const TokenWrongTypError = invalidToken('BATON_TOKEN_WRONG_TYP', 'Not a JWT access token');
export const TokenWrongAudienceError = invalidToken('BATON_TOKEN_WRONG_AUDIENCE', 'Access token for another audience');
export const TokenExpiredError = invalidToken('BATON_TOKEN_EXPIRED', 'Access token expired');
export const TokenNotYetValidError = invalidToken('BATON_TOKEN_NOT_YET_VALID', 'Access token not yet valid');
export const TokenActInvalidError = invalidToken('BATON_TOKEN_ACT_INVALID', 'Access token actor chain invalid');
export const TokenCnfInvalidError = invalidToken('BATON_TOKEN_CNF_INVALID', 'Access token confirmation claim unusable');
export const TokenIdTokenError = invalidToken('BATON_TOKEN_ID_TOKEN', 'An id_token is not an access token');
/** RFC 7662 §2.2: the issuer's introspection endpoint said `active: false` (revoked, expired or unknown). */
export const TokenInactiveError = invalidToken('BATON_TOKEN_INACTIVE', 'Access token not active');

/** The issuer's keys cannot be had: not the caller's fault, so 503, not 401. */
export const TokenKeysUnavailableError = defineError({ code: 'BATON_TOKEN_KEYS_UNAVAILABLE', status: 503, title: 'Token signing keys unavailable', oauthError: 'temporarily_unavailable' });

/** The introspection endpoint could not answer: never read as active, and not the caller's fault. */
export const TokenIntrospectionUnavailableError = defineError({ code: 'BATON_TOKEN_INTROSPECTION_UNAVAILABLE', status: 503, title: 'Token introspection unavailable', oauthError: 'temporarily_unavailable' });

/** The budget of introspection calls for tokens the issuer has not called active is spent (a flood of made-up tokens, or too low a budget): refused, never sent, never passed. */
export const TokenIntrospectionThrottledError = defineError({ code: 'BATON_TOKEN_INTROSPECTION_THROTTLED', status: 503, title: 'Token introspection budget spent', oauthError: 'temporarily_unavailable' });

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
  TokenCnfInvalidError.code,
  TokenIdTokenError.code,
  TokenInactiveError.code,
  TokenKeysUnavailableError.code,
  TokenIntrospectionUnavailableError.code,
  TokenIntrospectionThrottledError.code,
]);

/** A `TokenError` is any of the classes above. */
export type TokenError = HttpError;

export function isTokenError(value: unknown): value is TokenError {
  return isHttpError(value) && TOKEN_ERROR_CODES.has(value.code);
}
