/**
 * RFC 8693 §2.1 `actor_token`: optional further proof that the party
 * acting is the authenticated client. It is either a JWT the client signed
 * with its own key (iss = sub = client_id) or a Kubernetes projected
 * ServiceAccount token for the service account the client is bound to. It
 * never changes who the actor is: that is always the authenticated client.
 */
import { jwtVerify } from 'jose';
import { TokenType } from '../core/token-types.ts';
import type { KeySource } from '../token/key-source.ts';
import type { RegisteredClient } from './clients.ts';
import { AssertionError, ASSERTION_ALGORITHMS, peekIssuerAndSubject, verifyClientSignedJwt } from './jwt-assertion.ts';
import { TokenIssuerUnavailableError } from '../token/errors.ts';
import { BadRequestError } from '../core/errors.ts';
import { ActorTokenInvalidError } from './errors.ts';
import type { ReplayStore } from './replay-store.ts';

export interface KubernetesActorTrust {
  readonly issuer: string;
  readonly keys: KeySource;
  readonly audience: string;
}

export interface ActorTokenVerifierOptions {
  readonly issuer: string;
  readonly tokenEndpoint: string;
  readonly kubernetes: KubernetesActorTrust | undefined;
  readonly replay: ReplayStore;
  readonly clockToleranceSec: number;
  readonly now: () => number;
}

export type ActorProof = 'client_jwt' | 'kubernetes_service_account';

export interface ActorTokenVerifier {
  verify(actorToken: string, actorTokenType: string, client: RegisteredClient): Promise<ActorProof>;
}

export function createActorTokenVerifier(options: ActorTokenVerifierOptions): ActorTokenVerifier {
  const audiences = [options.tokenEndpoint, options.issuer];
  return {
    async verify(actorToken, actorTokenType, client) {
      if (actorTokenType !== TokenType.jwt) {
        throw new BadRequestError(`expected actor_token_type ${TokenType.jwt}, got another type`, {
          reason: 'unsupported-token-type',
        });
      }
      const { iss } = peekIssuerAndSubject(actorToken);
      if (options.kubernetes !== undefined && iss === options.kubernetes.issuer) {
        await verifyServiceAccountToken(actorToken, client, options.kubernetes, options);
        return 'kubernetes_service_account';
      }
      if (iss !== client.id)
        throw new ActorTokenInvalidError(
          'expected an actor token issued by the authenticated client or the cluster, got another issuer',
        );
      if (client.keys === undefined)
        throw new ActorTokenInvalidError(
          'expected the client to have registered keys to sign actor tokens with, got none',
        );
      try {
        await verifyClientSignedJwt(actorToken, {
          clientId: client.id,
          keys: client.keys,
          audiences,
          jtiRequired: false,
          purpose: 'actor',
          replay: options.replay,
          clockToleranceSec: options.clockToleranceSec,
          now: options.now,
        });
      } catch (error) {
        if (error instanceof AssertionError) {
          if (error.code === TokenIssuerUnavailableError.code)
            throw new TokenIssuerUnavailableError(`actor token: ${error.message}`, { cause: error, reason: 'jwks' });
          throw new ActorTokenInvalidError(`actor token: ${error.message}`, { cause: error, reason: error.reason });
        }
        throw error;
      }
      return 'client_jwt';
    },
  };
}

async function verifyServiceAccountToken(
  token: string,
  client: RegisteredClient,
  trust: KubernetesActorTrust,
  options: ActorTokenVerifierOptions,
): Promise<void> {
  if (client.serviceAccount === undefined) {
    throw new ActorTokenInvalidError(
      'expected the client to be bound to a Kubernetes service account, got no serviceAccount',
    );
  }
  let sub: unknown;
  try {
    ({
      payload: { sub },
    } = await jwtVerify(token, trust.keys.getKey, {
      algorithms: ASSERTION_ALGORITHMS,
      issuer: trust.issuer,
      audience: trust.audience,
      requiredClaims: ['exp', 'sub'],
      clockTolerance: options.clockToleranceSec,
      currentDate: new Date(options.now()),
    }));
  } catch (error) {
    if (error instanceof TokenIssuerUnavailableError)
      throw new TokenIssuerUnavailableError('actor token: the cluster key set could not be fetched', {
        cause: error,
        reason: 'jwks',
      });
    throw new ActorTokenInvalidError(
      'actor token: expected a service account token signed by the cluster issuer, for the configured audience, unexpired',
      { cause: error },
    );
  }
  const [namespace, name] = client.serviceAccount.split('/');
  if (sub !== `system:serviceaccount:${namespace}:${name}`) {
    throw new ActorTokenInvalidError(
      `actor token: expected the service account ${client.serviceAccount} of client ${client.id}, got another`,
    );
  }
}
