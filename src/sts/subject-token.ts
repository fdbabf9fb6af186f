/**
 * Verifying RFC 8693 §2.1 `subject_token`s: the STS's own tokens (mesh: the
 * chain they carry is trusted because this STS built it) and tokens of the
 * configured external identity providers (the user's first token, no chain).
 * A mesh token must be addressed to the client presenting it — a service
 * can exchange only tokens it received.
 */
import type { JSONWebKeySet } from 'jose';
import type { Dispatcher } from 'undici';
import type { Logger } from 'pino';
import type { KeySourceConfig } from '../token/config.ts';
import { isTokenError, TokenIntrospectionThrottledError, TokenIssuerUnavailableError } from '../token/errors.ts';
import { introspectorOf, profileOf } from '../token/issuer-profile-config.ts';
import { createLocalKeySource, createRemoteKeySource, type KeySource } from '../token/key-source.ts';
import { createAccessTokenVerifier } from '../token/verifier.ts';
import type { VerifiedToken } from '../token/verified-token.ts';
import type { ExternalIssuerConfig } from './config.ts';
import { SubjectTokenInvalidError } from './errors.ts';

export interface SubjectTokenVerifierOptions {
  readonly issuer: string;
  readonly jwks: JSONWebKeySet;
  readonly externalIssuers: readonly ExternalIssuerConfig[];
  readonly clockToleranceSec: number;
  /** Structural bound on `act` nesting; the policy decides the real depth. */
  readonly maxActDepth: number;
  /** How external issuers' keys are fetched and kept (the STS config's `jwks`). */
  readonly keySource: KeySourceConfig;
  readonly dispatcher?: Dispatcher | undefined;
  readonly logger: Logger;
  readonly now: () => number;
}

export interface SubjectTokenVerifier {
  verify(subjectToken: string, presentingClientId: string): Promise<VerifiedToken>;
  /** The STS published a new key set (rotation). */
  updateJwks(jwks: JSONWebKeySet): void;
  close(): void;
}

export function createSubjectTokenVerifier(options: SubjectTokenVerifierOptions): SubjectTokenVerifier {
  const meshKeys = createLocalKeySource(options.jwks);
  const externalKeys: KeySource[] = options.externalIssuers.map((external) =>
    createRemoteKeySource({
      issuer: external.issuer,
      ...(external.jwksUri === undefined ? {} : { jwksUri: external.jwksUri }),
      // An issuer known only by introspection still gets a key set by discovery, for the JWTs it may also issue.
      discovery: external.discovery ?? external.jwksUri === undefined,
      ...(options.dispatcher === undefined ? {} : { dispatcher: options.dispatcher }),
      ...options.keySource,
      logger: options.logger,
      now: options.now,
    }),
  );
  const verifier = createAccessTokenVerifier({
    issuers: [
      { issuer: options.issuer, keys: meshKeys, kind: 'mesh' },
      ...options.externalIssuers.map((external, index) => {
        const introspector = introspectorOf(external, options);
        return {
          issuer: external.issuer,
          keys: externalKeys[index] as KeySource,
          kind: 'external' as const,
          profile: profileOf(external),
          ...(external.audience === undefined ? {} : { audience: external.audience }),
          ...(introspector === undefined ? {} : { introspector }),
        };
      }),
    ],
    clockToleranceSec: options.clockToleranceSec,
    maxActDepth: options.maxActDepth,
    now: options.now,
  });
  return {
    async verify(subjectToken, presentingClientId) {
      try {
        return await verifier.verify(subjectToken, { audience: presentingClientId });
      } catch (error) {
        if (!isTokenError(error)) throw error;
        // Not the subject token's fault: its issuer could not be asked. Answered with the sidecar's code, 503 temporarily_unavailable.
        if (error.code === TokenIssuerUnavailableError.code)
          throw new TokenIssuerUnavailableError(`subject token: ${error.message}`, {
            cause: error,
            reason: error.reason,
          });
        if (error.code === TokenIntrospectionThrottledError.code)
          throw new TokenIntrospectionThrottledError(`subject token: ${error.message}`, {
            cause: error,
            extensions: { retryAfter: error.extensions.retryAfter ?? 1 },
          });
        // RFC 8693 §2.2.2: an invalid subject token is invalid_request; the token code is the reason. The verifier's messages never hold a token.
        throw new SubjectTokenInvalidError(`subject token: ${error.message}`, { cause: error, reason: error.code });
      }
    },
    updateJwks: (jwks) => meshKeys.update(jwks),
    close() {
      for (const keys of externalKeys) keys.close();
    },
  };
}
