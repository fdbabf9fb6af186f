/**
 * JWTs a client signs with its own key: `private_key_jwt` client assertions
 * (RFC 7523 §3, OpenID Connect Core §9) and self-signed actor tokens. Both
 * must name the client as `iss` and `sub`, be addressed to this STS, be
 * short-lived, and (when they carry a `jti`) be used once.
 */
import { decodeJwt, type JWTPayload, jwtVerify } from 'jose';
import { BatonError, isBatonError } from '../core/errors.ts';
import { TokenIssuerUnavailableError, TokenUnknownKidError } from '../token/errors.ts';
import type { KeySource } from '../token/key-source.ts';
import { ActorTokenInvalidError, InvalidClientError } from './errors.ts';
import type { ReplayStore } from './replay-store.ts';

/** Asymmetric only: a shared-secret or `none` assertion proves nothing about a key. */
export const ASSERTION_ALGORITHMS = ['ES256', 'ES384', 'EdDSA', 'RS256', 'PS256'];
export const MAX_ASSERTION_LIFETIME_SECONDS = 300;
const MAX_JTI_LENGTH = 256;

/** What the JWT is: a `private_key_jwt` client assertion, or a self-signed actor token. */
export type AssertionPurpose = 'assertion' | 'actor';

/** Why a client-signed JWT was refused; the `reason` of the refusal. */
export type AssertionFailure = 'malformed' | 'signature' | 'claims' | 'lifetime' | 'replayed';

const REFUSED: Readonly<Record<AssertionPurpose, string>> = {
  assertion: InvalidClientError.code,
  actor: ActorTokenInvalidError.code,
};

/**
 * A client-signed JWT refused: the code is the one its purpose is answered
 * with (a client assertion's invalid_client, an actor token's), the failure
 * its reason; or the client's key set could not be had at all.
 */
export class AssertionError extends BatonError {
  constructor(
    purpose: AssertionPurpose,
    failure: AssertionFailure | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(failure === undefined ? TokenIssuerUnavailableError.code : REFUSED[purpose], message, {
      ...options,
      reason: failure ?? 'jwks',
    });
    this.name = 'AssertionError';
  }
}

export interface AssertionCheck {
  readonly clientId: string;
  readonly keys: KeySource;
  /** Acceptable `aud` values: the token endpoint URL and the issuer. */
  readonly audiences: readonly string[];
  readonly jtiRequired: boolean;
  /** Also the namespace for the replay store. */
  readonly purpose: AssertionPurpose;
  readonly replay: ReplayStore;
  readonly clockToleranceSec: number;
  readonly now: () => number;
}

/** The unverified `iss`/`sub`, only to find whose keys to verify with. */
export function peekIssuerAndSubject(jwt: string): { iss: string | undefined; sub: string | undefined } {
  try {
    const payload = decodeJwt(jwt);
    return {
      iss: typeof payload.iss === 'string' ? payload.iss : undefined,
      sub: typeof payload.sub === 'string' ? payload.sub : undefined,
    };
  } catch {
    return { iss: undefined, sub: undefined };
  }
}

export async function verifyClientSignedJwt(jwt: string, check: AssertionCheck): Promise<JWTPayload> {
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(jwt, check.keys.getKey, {
      algorithms: ASSERTION_ALGORITHMS,
      // RFC 7523 §3: iss and sub MUST be the client_id; aud MUST identify the authorization server.
      issuer: check.clientId,
      subject: check.clientId,
      audience: [...check.audiences],
      requiredClaims: ['exp'],
      clockTolerance: check.clockToleranceSec,
      currentDate: new Date(check.now()),
    }));
  } catch (error) {
    const refuse = (failure: AssertionFailure | undefined, message: string): AssertionError =>
      new AssertionError(check.purpose, failure, message, { cause: error });
    // The key source's own errors by their code; jose's by the codes jose documents.
    const code = isBatonError(error) ? error.code : (error as { code?: unknown }).code;
    if (code === TokenIssuerUnavailableError.code) throw refuse(undefined, 'the client key set could not be fetched');
    if (
      code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' ||
      code === TokenUnknownKidError.code ||
      code === 'ERR_JOSE_ALG_NOT_ALLOWED' ||
      code === 'ERR_JWKS_NO_MATCHING_KEY'
    ) {
      throw refuse(
        'signature',
        `expected a JWT signed by a key of client ${check.clientId} with an allowed algorithm, got ${describeJoseCode(code)}`,
      );
    }
    if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' || code === 'ERR_JWT_EXPIRED') {
      const claim = (error as { claim?: unknown }).claim;
      throw refuse(
        'claims',
        `expected valid ${typeof claim === 'string' ? claim : 'registered'} claim(s) naming client ${check.clientId} and this STS, got otherwise`,
      );
    }
    throw refuse('malformed', 'expected a compact JWS JWT');
  }
  const nowSec = Math.floor(check.now() / 1000);
  const exp = payload.exp as number;
  if (exp - nowSec > MAX_ASSERTION_LIFETIME_SECONDS + check.clockToleranceSec) {
    throw new AssertionError(
      check.purpose,
      'lifetime',
      `expected exp at most ${MAX_ASSERTION_LIFETIME_SECONDS} s ahead, got ${exp - nowSec} s`,
    );
  }
  const jti = payload.jti;
  if (jti === undefined) {
    if (check.jtiRequired)
      throw new AssertionError(check.purpose, 'claims', 'expected a jti claim (RFC 7523 §3), got none');
    return payload;
  }
  if (typeof jti !== 'string' || jti === '' || jti.length > MAX_JTI_LENGTH)
    throw new AssertionError(check.purpose, 'claims', `expected jti as a string of 1-${MAX_JTI_LENGTH} characters`);
  // RFC 7523 §3 item 7: the authorization server may ensure a JWT is not replayed by keeping its jti.
  const fresh = await check.replay.claim(
    `${check.purpose}:${check.clientId}:${jti}`,
    (exp + check.clockToleranceSec) * 1000,
  );
  if (!fresh)
    throw new AssertionError(check.purpose, 'replayed', 'expected a jti not seen before, got one already used');
  return payload;
}

function describeJoseCode(code: unknown): string {
  switch (code) {
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'an algorithm outside the allow-list';
    case TokenUnknownKidError.code:
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return 'an unknown key';
    default:
      return 'a bad signature';
  }
}
