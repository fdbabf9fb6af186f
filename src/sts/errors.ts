/**
 * The STS's errors, one class per cause, each carrying its RFC 6749 §5.2 /
 * RFC 8693 §2.2.2 `error` code. The token endpoint answers with the OAuth
 * JSON error body, not problem+json, because that is what every OAuth
 * client parses; its `error_uri` is the cause's section of docs/errors.md.
 * The other routes answer problem+json (src/core/fastify-problems.ts).
 *
 * Causes the token endpoint shares with every server are core's: an
 * unreadable request is BATON_BAD_REQUEST with a reason, a method other
 * than POST BATON_METHOD_NOT_ALLOWED, anything unforeseen BATON_INTERNAL
 * (RFC 6749 §5.2 server_error). An issuer the STS cannot ask about a token
 * (its keys, its introspection endpoint, the introspection budget) is the
 * token code the sidecar answers with too (src/token/errors.ts).
 */
import { type HttpError, defineError } from '../core/errors.ts';
import { PolicyDeniedError } from '../policy/language/errors.ts';

/** RFC 8693 §2.2.2: the subject token is invalid or unacceptable; `reason` is the token code the verifier refused it with (src/token/errors.ts). */
export const SubjectTokenInvalidError = defineError({
  code: 'BATON_STS_SUBJECT_TOKEN_INVALID',
  status: 400,
  title: 'The subject token is invalid',
  oauthError: 'invalid_request',
});
export const ActorTokenInvalidError = defineError({
  code: 'BATON_STS_ACTOR_TOKEN_INVALID',
  status: 400,
  title: 'The actor token is invalid',
  oauthError: 'invalid_request',
});
export const ExternalTokenNotAtEntrypointError = defineError({
  code: 'BATON_STS_EXTERNAL_NOT_AT_ENTRYPOINT',
  status: 400,
  title: 'External tokens are accepted only from entrypoint services',
  oauthError: 'invalid_request',
});
export const MayActMismatchError = defineError({
  code: 'BATON_STS_MAY_ACT_MISMATCH',
  status: 400,
  title: 'The subject token does not allow this actor',
  oauthError: 'invalid_request',
});
export const InvalidTargetError = defineError({
  code: 'BATON_STS_INVALID_TARGET',
  status: 400,
  title: 'The requested audience or resource is not a service the STS issues for',
  oauthError: 'invalid_target',
});
export const InvalidScopeError = defineError({
  code: 'BATON_STS_INVALID_SCOPE',
  status: 400,
  title: 'The requested scope is wider than allowed',
  oauthError: 'invalid_scope',
});
export const InvalidClientError = defineError({
  code: 'BATON_STS_INVALID_CLIENT',
  status: 401,
  title: 'Client authentication failed',
  oauthError: 'invalid_client',
});
export const UnsupportedGrantTypeError = defineError({
  code: 'BATON_STS_UNSUPPORTED_GRANT_TYPE',
  status: 400,
  title: 'Unsupported grant type',
  oauthError: 'unsupported_grant_type',
});
/** Client authentication failed or is pending too often from one client or address (src/sts/auth-throttle.ts). */
export const AuthThrottledError = defineError({
  code: 'BATON_STS_AUTH_THROTTLED',
  status: 429,
  title: 'Too many failed or pending client authentications',
  oauthError: 'temporarily_unavailable',
});

/** The status and OAuth error the token endpoint answers a cause with, where they are not the cause's own. */
interface TokenEndpointAnswer {
  readonly status: number;
  readonly error: string;
  /** Another OAuth error for some reasons of the cause. */
  readonly byReason?: Readonly<Record<string, string>>;
}

/**
 * Causes the token endpoint shares with the sidecar whose own answer (a 403
 * problem) is not what an OAuth client reads: RFC 6749 §5.2 answers 400, with
 * the error RFC 8693 §2.2.2 names. A policy refusal of the edge is
 * invalid_target; of a chain that does not start at an entrypoint,
 * unauthorized_client (the client may not use the grant for it).
 */
export const TOKEN_ENDPOINT_ANSWERS: ReadonlyMap<string, TokenEndpointAnswer> = new Map([
  [
    PolicyDeniedError.code,
    { status: 400, error: 'invalid_target', byReason: { not_entrypoint: 'unauthorized_client' } },
  ],
]);

/** The HTTP status the token endpoint answers `error` with. */
export function tokenEndpointStatus(error: HttpError): number {
  return TOKEN_ENDPOINT_ANSWERS.get(error.code)?.status ?? error.status;
}

function oauthErrorOf(error: HttpError): string {
  const answer = TOKEN_ENDPOINT_ANSWERS.get(error.code);
  if (answer === undefined) return error.oauthError ?? 'server_error';
  return (error.reason === undefined ? undefined : answer.byReason?.[error.reason]) ?? answer.error;
}

/** RFC 6749 §5.2 error response; `error_uri` names the cause, `code` is baton's stable code and `reason` its sub-cause, when it has one. */
export interface OAuthErrorBody {
  readonly error: string;
  readonly error_description: string;
  readonly error_uri: string;
  readonly code: string;
  readonly reason?: string;
}

export function toOAuthError(error: HttpError): OAuthErrorBody {
  return {
    error: oauthErrorOf(error),
    // RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E only.
    error_description: error.message.replace(/[^\x20-\x21\x23-\x5b\x5d-\x7e]/g, ' '),
    error_uri: error.type,
    code: error.code,
    ...(error.reason === undefined ? {} : { reason: error.reason }),
  };
}
