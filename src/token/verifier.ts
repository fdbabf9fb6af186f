/**
 * RFC 9068 §4 validation of a JWT access token: preparse, pick the key set
 * of the issuer the token names (each issuer verified only with its own
 * keys), verify the signature with jose, then the claims baton relies on.
 */
import { entryTxn } from '../core/txn.ts';
import { errors as joseErrors, jwtVerify } from 'jose';
import { ActChainError, callerChain } from '../core/act-chain.ts';
import { parseScope } from '../core/claims.ts';
import { ACCESS_TOKEN_JWT_TYP } from '../core/token-types.ts';
import {
  isTokenError,
  TokenActInvalidError,
  TokenCnfInvalidError,
  TokenAlgNotAllowedError,
  TokenBadSignatureError,
  TokenExpiredError,
  TokenMalformedError,
  TokenNotYetValidError,
  TokenUntrustedIssuerError,
  TokenUnknownKidError,
  TokenWrongAudienceError,
  TokenWrongTypError,
  type TokenError,
} from './errors.ts';
import type { KeySource } from './key-source.ts';
import { preparseToken } from './preparse.ts';
import type { IssuerKind, VerifiedToken } from './verified-token.ts';

export type { IssuerKind, VerifiedToken } from './verified-token.ts';

export interface TrustedIssuer {
  readonly issuer: string;
  readonly keys: KeySource;
  readonly kind: IssuerKind;
  /** External issuers only: the `aud` they put in tokens for us; default the verifying service's name. */
  readonly audience?: string;
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

export interface AccessTokenVerifier {
  verify(token: string, expected: { readonly audience: string }): Promise<VerifiedToken>;
}

export const DEFAULT_ALGORITHMS: readonly string[] = ['ES256', 'EdDSA', 'RS256', 'PS256'];

export function createAccessTokenVerifier(options: AccessTokenVerifierOptions): AccessTokenVerifier {
  const algorithms = new Set(options.algorithms ?? DEFAULT_ALGORITHMS);
  for (const alg of algorithms) {
    if (alg.toLowerCase() === 'none' || alg.startsWith('HS')) throw new TypeError(`expected asymmetric signing algorithms, got ${alg}`);
  }
  const algorithmList = [...algorithms];
  const clockTolerance = options.clockToleranceSec ?? 30;
  const maxTokenBytes = options.maxTokenBytes ?? 8192;
  const now = options.now ?? Date.now;
  const byIssuer = new Map<string, TrustedIssuer>();
  for (const trusted of options.issuers) {
    if (byIssuer.has(trusted.issuer)) throw new TypeError(`issuer ${trusted.issuer} listed twice`);
    byIssuer.set(trusted.issuer, trusted);
  }

  return {
    async verify(token, expected) {
      const { payload: unverified } = preparseToken(token, { maxTokenBytes, algorithms });
      if (typeof unverified.iss !== 'string') throw new TokenMalformedError('expected an iss claim');
      const trusted = byIssuer.get(unverified.iss);
      if (trusted === undefined) throw new TokenUntrustedIssuerError(`expected an issuer from the allow-list, got ${JSON.stringify(unverified.iss.slice(0, 200))}`);

      const nowMs = now();
      let claims: Record<string, unknown>;
      try {
        ({ payload: claims } = await jwtVerify(token, trusted.keys.getKey, {
          issuer: trusted.issuer,
          algorithms: algorithmList,
          typ: ACCESS_TOKEN_JWT_TYP,
          clockTolerance,
          currentDate: new Date(nowMs),
          requiredClaims: ['exp', 'sub'],
        }));
      } catch (error) {
        throw toTokenError(error);
      }
      const audience = trusted.kind === 'external' ? (trusted.audience ?? expected.audience) : expected.audience;
      return readClaims(token, deepFreeze(claims), trusted, audience, Math.floor(nowMs / 1000), clockTolerance, options.maxActDepth);
    },
  };
}

function readClaims(token: string, claims: Readonly<Record<string, unknown>>, trusted: TrustedIssuer, audience: string, nowSec: number, tolerance: number, maxActDepth: number): VerifiedToken {
  // RFC 9068 §4: the aud MUST identify this resource server; baton mints exactly one so a token is never valid at two services.
  const aud = Array.isArray(claims.aud) && claims.aud.length === 1 ? claims.aud[0] : claims.aud;
  if (aud !== audience) throw new TokenWrongAudienceError(`expected exactly one aud equal to ${JSON.stringify(audience)}`);
  if (typeof claims.exp !== 'number') throw new TokenMalformedError('expected a numeric exp claim');
  if (claims.iat !== undefined && (typeof claims.iat !== 'number' || claims.iat > nowSec + tolerance)) {
    throw new TokenNotYetValidError('expected iat not in the future');
  }
  if (typeof claims.sub !== 'string' || claims.sub === '') throw new TokenMalformedError('expected a non-empty sub claim');

  let chain: readonly string[] = [];
  let user = true;
  if (trusted.kind === 'mesh') {
    if (claims.sub_type !== 'user' && claims.sub_type !== 'service') throw new TokenMalformedError("expected sub_type 'user' or 'service'");
    user = claims.sub_type === 'user';
    try {
      chain = Object.freeze(callerChain(claims, maxActDepth));
    } catch (error) {
      if (error instanceof ActChainError) throw new TokenActInvalidError(error.message, { cause: error });
      throw error;
    }
  } else if (claims.act !== undefined) {
    // DESIGN trust assumption: only the mesh STS's act chain is believed; a delegated external token is refused, not flattened.
    throw new TokenActInvalidError('expected no act claim in a token from an external issuer');
  }

  return Object.freeze({
    claims,
    issuer: trusted.issuer,
    kind: trusted.kind,
    subject: claims.sub,
    user,
    chain,
    scopes: readScopes(claims),
    // An external token starts the chain: its txn is derived so the STS derives the same one.
    txn: trusted.kind === 'mesh' ? optionalString(claims.txn) : entryTxn(trusted.issuer, claims.jti, token),
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
  if (typeof cnf !== 'object' || cnf === null || Array.isArray(cnf)) throw new TokenCnfInvalidError('expected cnf to be a JSON object');
  const members = Object.keys(cnf);
  const thumbprint = (cnf as Record<string, unknown>)['x5t#S256'];
  if (members.length !== 1 || typeof thumbprint !== 'string' || !X5T_S256.test(thumbprint)) {
    throw new TokenCnfInvalidError('expected cnf to hold exactly x5t#S256, a base64url SHA-256 thumbprint (RFC 8705 §3.1)');
  }
  return thumbprint;
}

/** RFC 9068 §2.2.3 `scope`; some external IdPs send an `scp` array instead. */
function readScopes(claims: Readonly<Record<string, unknown>>): ReadonlySet<string> {
  if (claims.scope === undefined && Array.isArray(claims.scp)) {
    return new Set(claims.scp.filter((s): s is string => typeof s === 'string' && s !== '' && !s.includes(' ')));
  }
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
  if (error instanceof joseErrors.JWTExpired) return new TokenExpiredError('expected exp in the future', { cause: error });
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case 'nbf':
        return new TokenNotYetValidError('expected nbf not in the future', { cause: error });
      case 'iat':
        return new TokenNotYetValidError('expected iat not in the future', { cause: error });
      case 'typ':
        return new TokenWrongTypError('expected typ at+jwt', { cause: error });
      case 'iss':
        return new TokenUntrustedIssuerError('expected the iss the key set belongs to', { cause: error });
      default:
        return new TokenMalformedError(`expected a valid ${error.claim} claim`, { cause: error });
    }
  }
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return new TokenBadSignatureError('expected a valid signature', { cause: error });
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return new TokenAlgNotAllowedError('expected an allowed alg', { cause: error });
  if (error instanceof joseErrors.JWKSNoMatchingKey) return new TokenUnknownKidError('expected a kid naming a published key', { cause: error });
  if (error instanceof joseErrors.JWTInvalid || error instanceof joseErrors.JWSInvalid) return new TokenMalformedError('expected a well-formed JWT', { cause: error });
  // Anything else (an unusable key, an unsupported curve): fail closed, as a signature that did not verify.
  return new TokenBadSignatureError('expected a signature verifiable with the issuer key', { cause: error });
}
