/**
 * The STS's collaborators, built from its config: the client registry and
 * the authenticator in front of it (with its failure throttle and the
 * replay store for single-use assertions), the subject-token verifier
 * (the STS's own keys, followed through rotation, and the external
 * issuers), the Kubernetes ServiceAccount key set for actor tokens, and the
 * grant context every grant handler reads. The HTTP surface
 * (src/sts/server.ts) only routes to them; `close()` releases what was
 * opened here.
 */
import type { Dispatcher } from 'undici';
import type { Logger } from 'pino';
import type { MeshIdentity } from '../identity/transport.ts';
import { createSubjectPseudonym } from '../telemetry/subject-pseudonym.ts';
import { createRemoteKeySource } from '../token/key-source.ts';
import { createActorTokenVerifier } from './actor-token.ts';
import { createAudienceResolver } from './audience.ts';
import { createAuthThrottle } from './auth-throttle.ts';
import { type ClientAuthenticator, createClientAuthenticator } from './client-auth.ts';
import { createClientRegistry } from './clients.ts';
import type { StsConfig } from './config.ts';
import type { GrantContext } from './grants/grant-context.ts';
import type { KeyStore } from './key-store.ts';
import { stsEndpoints } from './metadata.ts';
import { createMinter } from './mint.ts';
import { createMemoryReplayStore, type ReplayStore } from './replay-store.ts';
import type { PolicySnapshot } from '../policy/distribution/source.ts';
import { createSubjectTokenVerifier } from './subject-token.ts';

export interface StsCollaboratorDeps {
  readonly logger: Logger;
  readonly policy: { snapshot(): PolicySnapshot | undefined };
  readonly keys: KeyStore;
  /** A shared store (Redis); absent, one in process that close() closes. */
  readonly replay?: ReplayStore | undefined;
  readonly dispatcher?: Dispatcher | undefined;
  readonly mesh?: MeshIdentity | undefined;
  readonly now: () => number;
}

export interface StsCollaborators {
  readonly authenticator: ClientAuthenticator;
  readonly context: GrantContext;
  readonly replay: ReplayStore;
  close(): Promise<void>;
}

export function createStsCollaborators(config: StsConfig, deps: StsCollaboratorDeps): StsCollaborators {
  const { logger, dispatcher, mesh, now } = deps;
  const endpoints = stsEndpoints(config.issuer);
  const replay = deps.replay ?? createMemoryReplayStore({ now });
  const registry = createClientRegistry(config.clients, {
    dispatcher,
    logger,
    now,
    map: mesh?.map,
    keySource: config.jwks,
  });
  const subjectTokens = createSubjectTokenVerifier({
    issuer: config.issuer,
    jwks: deps.keys.jwks(),
    externalIssuers: config.externalIssuers,
    clockToleranceSec: config.clockToleranceSeconds,
    maxActDepth: config.maxChainDepth,
    keySource: config.jwks,
    dispatcher,
    logger,
    now,
  });
  const stopFollowingKeys = deps.keys.onRotate((jwks) => subjectTokens.updateJwks(jwks));
  const { kubernetes } = config;
  const kubernetesKeys =
    kubernetes === undefined
      ? undefined
      : createRemoteKeySource({
          issuer: kubernetes.issuer,
          jwksUri: kubernetes.jwksUri,
          ...config.jwks,
          logger,
          now,
          ...(dispatcher === undefined ? {} : { dispatcher }),
        });
  const throttle = createAuthThrottle({ ...config.clientAuth, now });
  const authenticator = createClientAuthenticator({
    registry,
    issuer: config.issuer,
    tokenEndpoint: endpoints.tokenEndpoint,
    replay,
    clockToleranceSec: config.clockToleranceSeconds,
    now,
    throttle,
  });
  const context: GrantContext = {
    issuer: config.issuer,
    tokenTtlSeconds: config.tokenTtlSeconds,
    maxChainDepth: config.maxChainDepth,
    policy: () => deps.policy.snapshot(),
    audiences: createAudienceResolver(config.resources),
    subjectTokens,
    actorTokens: createActorTokenVerifier({
      issuer: config.issuer,
      tokenEndpoint: endpoints.tokenEndpoint,
      kubernetes:
        kubernetes === undefined || kubernetesKeys === undefined
          ? undefined
          : { issuer: kubernetes.issuer, audience: kubernetes.audience, keys: kubernetesKeys },
      replay,
      clockToleranceSec: config.clockToleranceSeconds,
      now,
    }),
    mint: createMinter(deps.keys),
    logger,
    now,
    subjectPseudonym: createSubjectPseudonym(config.telemetry),
  };
  return {
    authenticator,
    context,
    replay,
    async close() {
      stopFollowingKeys();
      subjectTokens.close();
      registry.close();
      kubernetesKeys?.close();
      if (deps.replay === undefined) await replay.close();
    },
  };
}
