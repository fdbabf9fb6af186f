/**
 * RFC 9068 §4 validation of a JWT access token: preparse, pick the key set
 * of the issuer the token names (each issuer verified only with its own
 * keys), verify the signature with jose, then the claims baton relies on.
 */
import { entryTxn } from '../core/txn.ts';
import { errors as joseErrors, jwtVerify } from 'jose';
import { ActChainError, callerChain } from '../core/act-chain.ts';
import { parseScope } from '../core/claims.ts';
import {
  isTokenError,
  TokenActInvalidError,
  TokenAlgNotAllowedError,
  TokenBadSignatureError,
  TokenExpiredError,
  TokenMalformedError,
  TokenNotYetValidError,
  TokenTooLargeError,
  TokenUntrustedIssuerError,
  TokenUnknownKidError,
  TokenWrongAudienceError,
  type TokenError,
} from './errors.ts';
import { DEFAULT_CLOCK_TOLERANCE_SECONDS, DEFAULT_MAX_TOKEN_BYTES } from './config.ts';
import type { Introspector } from './introspection.ts';
import { checkTyp, type IssuerProfile, readProfileClaims, resolveProfile } from './issuer-profile.ts';
import type { KeySource } from './key-source.ts';
import { createOpaqueRouter } from './opaque-routing.ts';
import { preparseToken } from './preparse.ts';
import type { IssuerKind, VerifiedToken } from './verified-token.ts';

export interface TrustedIssuer {
  readonly issuer: string;
  readonly keys: KeySource;
  readonly kind: IssuerKind;
  /** External issuers only: the `aud` they put in tokens for us; default the verifying service's name. */
  readonly audience?: string;
  /** External issuers only: how their tokens are shaped (issuer-profile.ts); default the strict `rfc9068`. */
  readonly profile?: IssuerProfile;
  /** External issuers only: RFC 7662 introspection of opaque (non-JWT) tokens; several issuers are told apart by their token prefixes (opaque-routing.ts). */
  readonly introspector?: Introspector;
}

export interface AccessTokenVerifierOptions {
  readonly issuers: readonly TrustedIssuer[];
  readonly algorithms?: readonly string[];
  readonly clockToleranceSec?: number;
  readonly maxTokenBytes?: number;
  /** Most services in a chain, caller included. */
  readonly maxActDepth: number;
  /** Milliseconds. */
  readonly now?: () => number;
}

/** A function-typed member, not a method: a stand-in is checked with strict parameter variance. */
export interface AccessTokenVerifier {
  readonly verify: (token: string, expected: { readonly audience: string }) => Promise<VerifiedToken>;
}

export const DEFAULT_ALGORITHMS: readonly string[] = ['ES256', 'EdDSA', 'RS256', 'PS256'];
const STRICT = resolveProfile();

export function createAccessTokenVerifier(options: AccessTokenVerifierOptions): AccessTokenVerifier {
  const algorithms = new Set(options.algorithms ?? DEFAULT_ALGORITHMS);
  for (const alg of algorithms) {
    if (alg.toLowerCase() === 'none' || alg.startsWith('HS'))
      throw new TypeError(`expected asymmetric signing algorithms, got ${alg}`);
  }
  const algorithmList = [...algorithms];
  const clockTolerance = options.clockToleranceSec ?? DEFAULT_CLOCK_TOLERANCE_SECONDS;
  const maxTokenBytes = options.maxTokenBytes ?? DEFAULT_MAX_TOKEN_BYTES;
  const now = options.now ?? Date.now;
  const byIssuer = new Map<string, TrustedIssuer>();
  for (const trusted of options.issuers) {
    if (byIssuer.has(trusted.issuer)) throw new TypeError(`issuer ${trusted.issuer} listed twice`);
    byIssuer.set(trusted.issuer, trusted);
  }
  // An opaque token names no issuer: it goes to the one issuer whose token prefix it starts with, never to another, which would see it.
  const introspecting = options.issuers
    .filter((t) => t.kind === 'external' && t.introspector !== undefined)
    .map((trusted) => ({ trusted, tokenPrefix: (trusted.introspector as Introspector).tokenPrefix }));
  const opaqueIssuerOf = introspecting.length === 0 ? undefined : createOpaqueRouter(introspecting);

  return {
    async verify(token, expected) {
      if (opaqueIssuerOf !== undefined && !isJoseShaped(token, maxTokenBytes)) {
        const route = opaqueIssuerOf(token);
        if (route === undefined)
          throw new TokenUntrustedIssuerError(
            'expected an opaque token that starts with the tokenPrefix of an introspecting issuer',
          );
        return await verifyOpaque(token, route.trusted, expected.audience);
      }
      const { header, payload: unverified } = preparseToken(token, { maxTokenBytes, algorithms, checkTyp: false });
      if (typeof unverified.iss !== 'string') throw new TokenMalformedError('expected an iss claim');
      const trusted = byIssuer.get(unverified.iss);
      if (trusted === undefined)
        throw new TokenUntrustedIssuerError(
          `expected an issuer from the allow-list, got ${JSON.stringify(unverified.iss.slice(0, 200))}`,
        );
      // Mesh tokens keep baton's own rules whatever the external profiles say.
      const profile = trusted.kind === 'external' ? (trusted.profile ?? STRICT) : STRICT;
      checkTyp(header.typ, profile);

      const nowMs = now();
      let claims: Record<string, unknown>;
      try {
        ({ payload: claims } = await jwtVerify(token, trusted.keys.getKey, {
          issuer: trusted.issuer,
          algorithms: algorithmList,
          clockTolerance,
          currentDate: new Date(nowMs),
          requiredClaims: ['exp'],
        }));
      } catch (error) {
        throw toTokenError(error);
      }
      const nowSec = Math.floor(nowMs / 1000);
      checkIat(claims, nowSec, clockTolerance);
      if (trusted.kind === 'mesh')
        return readMeshClaims(deepFreeze(claims), trusted, expected.audience, options.maxActDepth);
      return readExternalClaims(token, deepFreeze(claims), trusted, profile, trusted.audience ?? expected.audience);
    },
  };

  /** RFC 7662: the issuer says whether the token is active and what it carries; the profile reads it like a JWT's claims. */
  async function verifyOpaque(token: string, trusted: TrustedIssuer, fallbackAudience: string): Promise<VerifiedToken> {
    if (token.length > maxTokenBytes)
      throw new TokenTooLargeError(`expected a token of at most ${maxTokenBytes} bytes, got ${token.length}`);
    const claims = await (trusted.introspector as Introspector).introspect(token);
    const nowSec = Math.floor(now() / 1000);
    if (claims.iss !== undefined && claims.iss !== trusted.issuer)
      throw new TokenUntrustedIssuerError('expected the introspected token to name the introspecting issuer');
    if (typeof claims.exp !== 'number')
      throw new TokenMalformedError('expected a numeric exp in the introspection response');
    if (claims.exp <= nowSec - clockTolerance) throw new TokenExpiredError('expected exp in the future');
    if (typeof claims.nbf === 'number' && claims.nbf > nowSec + clockTolerance)
      throw new TokenNotYetValidError('expected nbf not in the future');
    checkIat(claims, nowSec, clockTolerance);
    // RFC 7662 §2.2 token_type: a refresh token, or a DPoP-bound one (RFC 9449 §6.2) whose proof baton cannot check, is no bearer access token.
    if (
      claims.token_type !== undefined &&
      (typeof claims.token_type !== 'string' || claims.token_type.toLowerCase() !== 'bearer')
    ) {
      throw new TokenMalformedError('expected token_type Bearer in the introspection response');
    }
    if (claims.cnf !== undefined)
      throw new TokenMalformedError('expected no cnf: a sender-constrained external token cannot be checked here');
    // No sub: a token with no resource owner (client credentials); RFC 9068 §2.2 names the client as its subject.
    const sub = claims.sub ?? claims.client_id;
    const verified = readExternalClaims(
      token,
      deepFreeze({ ...claims, sub, iss: trusted.issuer }),
      trusted,
      trusted.profile ?? STRICT,
      trusted.audience ?? fallbackAudience,
    );
    const introspector = trusted.introspector as Introspector;
    return Object.freeze({
      ...verified,
      reuseUntil: Math.min(verified.expiresAt, nowSec + introspector.maxCacheSeconds),
    });
  }
}

/**
 * Whether a token is, or was cut from, a JOSE object: a compact JWS (two
 * dots, RFC 7515 §7.1), a compact JWE (four dots, RFC 7516 §7.1), or any
 * dotted token whose first segment is base64url of a JSON object (a JOSE
 * header, however many segments follow). Such a token is some issuer's JWT:
 * it is never sent to the opaque issuer's introspection endpoint, which
 * would disclose it (RFC 7662 §2.1 sends the token itself), but read as a
 * JWT, which refuses anything that is not a well-formed JWS. Opaque tokens
 * with a dot (`ya29.…`, `ory_at_….…`) do not start with a JSON object.
 */
function isJoseShaped(token: string, maxTokenBytes: number): boolean {
  const first = token.indexOf('.');
  if (first === -1) return false;
  let dots = 0;
  for (let i = first; i !== -1; i = token.indexOf('.', i + 1)) dots++;
  if (dots === 2 || dots === 4) return true;
  // Too long to be read at all: the JWT path refuses it for its size, before decoding anything.
  if (token.length > maxTokenBytes) return true;
  try {
    const header: unknown = JSON.parse(Buffer.from(token.slice(0, first), 'base64url').toString('utf8'));
    return typeof header === 'object' && header !== null && !Array.isArray(header);
  } catch {
    return false;
  }
}

function checkIat(claims: Readonly<Record<string, unknown>>, nowSec: number, tolerance: number): void {
  if (claims.iat !== undefined && (typeof claims.iat !== 'number' || claims.iat > nowSec + tolerance)) {
    throw new TokenNotYetValidError('expected iat not in the future');
  }
}

function readMeshClaims(
  claims: Readonly<Record<string, unknown>>,
  trusted: TrustedIssuer,
  audience: string,
  maxActDepth: number,
): VerifiedToken {
  // RFC 9068 §4: the aud MUST identify this resource server; baton mints exactly one so a token is never valid at two services.
  const aud = Array.isArray(claims.aud) && claims.aud.length === 1 ? claims.aud[0] : claims.aud;
  if (aud !== audience)
    throw new TokenWrongAudienceError(`expected exactly one aud equal to ${JSON.stringify(audience)}`);
  if (typeof claims.exp !== 'number') throw new TokenMalformedError('expected a numeric exp claim');
  if (typeof claims.sub !== 'string' || claims.sub === '')
    throw new TokenMalformedError('expected a non-empty sub claim');
  if (claims.sub_type !== 'user' && claims.sub_type !== 'service')
    throw new TokenMalformedError("expected sub_type 'user' or 'service'");
  const subjectIssuer = readSubId(claims.sub_id, claims.sub);
  let chain: readonly string[];
  try {
    chain = Object.freeze(callerChain(claims, maxActDepth));
  } catch (error) {
    if (error instanceof ActChainError)
      throw new TokenActInvalidError(error.message, { cause: error, reason: error.reason });
    throw error;
  }
  return Object.freeze({
    claims,
    issuer: trusted.issuer,
    kind: trusted.kind,
    subject: claims.sub,
    subjectIssuer,
    user: claims.sub_type === 'user',
    chain,
    scopes: readScopes(claims),
    txn: optionalString(claims.txn),
    acr: optionalString(claims.acr),
    authTime: typeof claims.auth_time === 'number' ? claims.auth_time : undefined,
    clientId: optionalString(claims.client_id),
    expiresAt: claims.exp,
    jti: optionalString(claims.jti),
    confirmation: readConfirmation(claims.cnf),
  });
}

const X5T_S256 = /^[A-Za-z0-9_-]{43}$/;

/**
 * RFC 8705 §3.1 / RFC 7800 §3.1: a `cnf` this verifier cannot check fails
 * closed. Only `x5t#S256` is understood; a `cnf` naming another method
 * (jkt, jwk) would be a binding nobody enforces, so it is refused.
 */
function readConfirmation(cnf: unknown): string | undefined {
  if (cnf === undefined) return undefined;
  if (typeof cnf !== 'object' || cnf === null || Array.isArray(cnf))
    throw new TokenMalformedError('expected cnf to be a JSON object', { reason: 'cnf' });
  const members = Object.keys(cnf);
  const thumbprint = (cnf as Record<string, unknown>)['x5t#S256'];
  if (members.length !== 1 || typeof thumbprint !== 'string' || !X5T_S256.test(thumbprint)) {
    throw new TokenMalformedError(
      'expected cnf to hold exactly x5t#S256, a base64url SHA-256 thumbprint (RFC 8705 §3.1)',
      { reason: 'cnf' },
    );
  }
  return thumbprint;
}

/**
 * RFC 9493 §4.1 `sub_id` in `iss_sub` format (§3.2.5): the issuer that
 * authenticated the subject. `sub` alone is unique only within one issuer,
 * so every mesh token must say which; §4.1 requires `sub_id` and `sub` to
 * name the same subject.
 */
function readSubId(subId: unknown, sub: string): string {
  if (typeof subId !== 'object' || subId === null || Array.isArray(subId))
    throw new TokenMalformedError("expected a sub_id claim (RFC 9493) naming the subject's issuer");
  const { format, iss, sub: idSub } = subId as { format?: unknown; iss?: unknown; sub?: unknown };
  if (format !== 'iss_sub' || typeof iss !== 'string' || iss === '')
    throw new TokenMalformedError("expected sub_id in format 'iss_sub' with a non-empty iss");
  if (idSub !== sub) throw new TokenMalformedError('expected sub_id.sub to equal sub');
  return iss;
}

function readExternalClaims(
  token: string,
  claims: Readonly<Record<string, unknown>>,
  trusted: TrustedIssuer,
  profile: IssuerProfile,
  audience: string,
): VerifiedToken {
  if (typeof claims.exp !== 'number') throw new TokenMalformedError('expected a numeric exp claim');
  // DESIGN trust assumption: only the mesh STS's act chain is believed; a delegated external token is refused, not flattened.
  if (claims.act !== undefined)
    throw new TokenActInvalidError('expected no act claim in a token from an external issuer');
  // A sub_id in an external token would claim another issuer's user: only the STS may qualify a subject.
  if (claims.sub_id !== undefined)
    throw new TokenMalformedError('expected no sub_id claim in a token from an external issuer');
  const identity = readProfileClaims(claims, profile, { issuer: trusted.issuer, audience });
  return Object.freeze({
    claims,
    issuer: trusted.issuer,
    kind: trusted.kind,
    subject: identity.subject,
    subjectIssuer: trusted.issuer,
    user: identity.user,
    chain: [],
    scopes: identity.scopes,
    // An external token starts the chain: its txn is derived so the STS derives the same one.
    txn: entryTxn(trusted.issuer, claims.jti, token),
    acr: optionalString(claims.acr),
    authTime: typeof claims.auth_time === 'number' ? claims.auth_time : undefined,
    clientId: identity.clientId,
    // An IdP may bind its tokens too (RFC 8705): then the entrypoint holds them to that certificate.
    confirmation: readConfirmation(claims.cnf),
    expiresAt: claims.exp,
    jti: optionalString(claims.jti),
  });
}

/** RFC 9068 §2.2.3 `scope`, as the STS mints it. */
function readScopes(claims: Readonly<Record<string, unknown>>): ReadonlySet<string> {
  return parseScope(claims.scope);
}

function optionalString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const member of Object.values(value)) deepFreeze(member);
  }
  return value;
}

function toTokenError(error: unknown): TokenError {
  if (isTokenError(error)) return error;
  if (error instanceof joseErrors.JWTExpired)
    return new TokenExpiredError('expected exp in the future', { cause: error });
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case 'nbf':
        return new TokenNotYetValidError('expected nbf not in the future', { cause: error });
      case 'iat':
        return new TokenNotYetValidError('expected iat not in the future', { cause: error });
      case 'iss':
        return new TokenUntrustedIssuerError('expected the iss the key set belongs to', { cause: error });
      default:
        return new TokenMalformedError(`expected a valid ${error.claim} claim`, { cause: error });
    }
  }
  if (error instanceof joseErrors.JWSSignatureVerificationFailed)
    return new TokenBadSignatureError('expected a valid signature', { cause: error });
  if (error instanceof joseErrors.JOSEAlgNotAllowed)
    return new TokenAlgNotAllowedError('expected an allowed alg', { cause: error });
  if (error instanceof joseErrors.JWKSNoMatchingKey)
    return new TokenUnknownKidError('expected a kid naming a published key', { cause: error });
  if (error instanceof joseErrors.JWTInvalid || error instanceof joseErrors.JWSInvalid)
    return new TokenMalformedError('expected a well-formed JWT', { cause: error });
  // Anything else (an unusable key, an unsupported curve): fail closed, as a signature that did not verify.
  return new TokenBadSignatureError('expected a signature verifiable with the issuer key', { cause: error });
}
