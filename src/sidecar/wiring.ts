/**
 * The sidecar's collaborators, built from its config: the policy source
 * (signed policy server or a local file), one key set per trusted issuer
 * (the STS; external IdPs at entrypoints), the verifier and its cache, the
 * sealed context handles, and the token exchanger once the STS token
 * endpoint is known (configured, or discovered per RFC 8414).
 */
import { readFileSync } from 'node:fs';
import type { Dispatcher } from 'undici';
import { parseSpiffeId } from '../identity/spiffe-id.ts';
import type { Logger } from 'pino';
import { policySourceFor } from '../policy/distribution/client.ts';
import type { PolicySource } from '../policy/distribution/source.ts';
import { describe, discoverMetadata, metadataEndpoint } from '../token/jwks-fetch.ts';
import { createRemoteKeySource, type KeySource } from '../token/key-source.ts';
import { introspectorOf, profileOf } from '../token/issuer-profile-config.ts';
import { createVerifiedTokenCache } from '../token/verified-cache.ts';
import { createAccessTokenVerifier } from '../token/verifier.ts';
import { createContextHandles } from './context-handles.ts';
import { createTokenCache, type RedisTierOptions } from './exchange/token-cache.ts';
import { loadSealKeys } from './exchange/token-seal.ts';
import { type SidecarRedisConfig, sidecarRedisUser } from '../redis/config.ts';
import { loadRedis, type RedisClass } from '../redis/client.ts';
import type { SidecarMetrics } from './metrics.ts';
import { createTokenExchanger, type ExchangeClient } from './exchange/exchanger.ts';
import { POLICY_SERVER_SERVICE, STS_SERVICE, type SidecarConfig, stsAuthMethod } from './config.ts';
import { createMeshClient, type MeshClient } from '../identity/mesh-client.ts';
import { type MeshIdentity, type PartTransportConfig, startMeshIdentity } from '../identity/transport.ts';
import type { Collaborators } from './collaborators.ts';
import type { Tracing } from '../telemetry/tracing.ts';
import { ConfigError } from '../config/config-error.ts';

/** mtls mode: the workload identity, the SPIFFE rule and the mesh client built from them, shared by every collaborator. */
export interface SidecarMesh extends MeshIdentity {
  readonly client: MeshClient;
}

/** The sidecar's and `baton authz`'s mesh: undefined in plaintext mode (after the warning), else the identity and its client. */
export function startSidecarMesh(
  config: PartTransportConfig & { readonly connectTimeoutMs: number },
  part: string,
  deps: { logger: Logger; now: () => number },
): SidecarMesh | undefined {
  const meshIdentity = startMeshIdentity(config, part, deps);
  if (meshIdentity === undefined) return undefined;
  const client = createMeshClient({
    identity: meshIdentity.identity,
    logger: deps.logger,
    connectTimeoutMs: config.connectTimeoutMs,
  });
  return { ...meshIdentity, client };
}

/**
 * The keys of a config the collaborators are built from: the sidecar's, and
 * `baton authz`'s (src/authz/config.ts), which takes the same blocks from
 * the same schema pieces.
 */
export type CollaboratorsConfig = Pick<
  SidecarConfig,
  'service' | 'sts' | 'policy' | 'externalIssuers' | 'exchange' | 'jwks' | 'transport'
> & {
  readonly redis?: SidecarConfig['redis'];
  readonly cache: Pick<
    SidecarConfig['cache'],
    'maxEntries' | 'verifiedMaxEntries' | 'handleMaxEntries' | 'handleMaxPerSubject'
  >;
  readonly limits: Pick<SidecarConfig['limits'], 'maxTokenBytes' | 'maxActDepth' | 'clockToleranceSeconds'>;
};

export async function createCollaborators(
  config: CollaboratorsConfig,
  deps: {
    logger: Logger;
    now: () => number;
    mesh?: SidecarMesh | undefined;
    metrics?: SidecarMetrics;
    tracing: Tracing;
  },
): Promise<Collaborators> {
  const { logger, now, mesh } = deps;
  // mtls: a token bound to this pod's certificate is useless elsewhere, so it is never shared through Redis (docs/security.md).
  if (mesh !== undefined && config.redis !== undefined)
    logger.warn(
      { event: 'redis_unused' },
      "redis is ignored for exchanged tokens in mtls mode: they are bound to this workload's certificate",
    );
  // First: a bad seal key or password file must stop the sidecar before anything else starts.
  const tokenCache = createTokenCache({
    maxEntries: config.cache.maxEntries,
    ...(config.redis === undefined || mesh !== undefined
      ? {}
      : { redis: redisTier(config.service, config.redis, await loadRedis()) }),
    logger,
    ...(deps.metrics === undefined ? {} : { onRedisEvent: deps.metrics.redisTier }),
    now,
  });
  // mtls: the STS (metadata, JWKS, token endpoint) and the policy server are reached over TLS, each checked by its SPIFFE ID.
  let stsDispatcher: Dispatcher | undefined;
  let policyDispatcher: Dispatcher | undefined;
  if (mesh !== undefined) {
    // An explicit ID is parsed like any other: two spellings never name one workload.
    const stsId =
      config.sts.spiffeId === undefined ? mesh.map.idOf(STS_SERVICE) : parseSpiffeId(config.sts.spiffeId).id;
    for (const url of [config.sts.issuer, config.sts.tokenEndpoint, config.sts.jwksUri])
      if (url !== undefined) mesh.client.expect(url, stsId);
    if (config.policy.url !== undefined)
      mesh.client.expect(
        config.policy.url,
        config.policy.spiffeId === undefined
          ? mesh.map.idOf(POLICY_SERVER_SERVICE)
          : parseSpiffeId(config.policy.spiffeId).id,
      );
    stsDispatcher = mesh.client.dispatcher;
    policyDispatcher = mesh.client.dispatcher;
  } else if (config.redis !== undefined) {
    logger.info({ event: 'redis_token_cache' }, 'exchanged tokens are shared through redis (plaintext mode)');
  }
  const policy = policySource(config, logger, policyDispatcher);
  const stsKeys = createRemoteKeySource({
    issuer: config.sts.issuer,
    discovery: config.sts.jwksUri === undefined,
    ...(config.sts.jwksUri === undefined ? {} : { jwksUri: config.sts.jwksUri }),
    ...(stsDispatcher === undefined ? {} : { dispatcher: stsDispatcher }),
    ...config.jwks,
    logger,
    now,
  });
  const externalKeys: KeySource[] = config.externalIssuers.map((e) =>
    createRemoteKeySource({
      issuer: e.issuer,
      discovery: e.jwksUri === undefined,
      ...(e.jwksUri === undefined ? {} : { jwksUri: e.jwksUri }),
      ...config.jwks,
      logger,
      now,
    }),
  );
  const verifier = createAccessTokenVerifier({
    issuers: [
      { issuer: config.sts.issuer, keys: stsKeys, kind: 'mesh' },
      ...config.externalIssuers.map((e, i) => {
        const introspector = introspectorOf(e, { logger, now });
        return {
          issuer: e.issuer,
          keys: externalKeys[i] as KeySource,
          kind: 'external' as const,
          audience: e.audience ?? config.service,
          profile: profileOf(e),
          ...(introspector === undefined ? {} : { introspector }),
        };
      }),
    ],
    maxTokenBytes: config.limits.maxTokenBytes,
    maxActDepth: config.limits.maxActDepth,
    clockToleranceSec: config.limits.clockToleranceSeconds,
    now,
  });
  const verifiedCache = createVerifiedTokenCache({ max: config.cache.verifiedMaxEntries, now });
  const handles = createContextHandles({ maxTokenBytes: config.limits.maxTokenBytes, now });
  for (const key of ['handleMaxEntries', 'handleMaxPerSubject'] as const) {
    if (config.cache[key] !== undefined)
      logger.warn(
        { event: 'config_deprecated', key: `cache.${key}` },
        `cache.${key} is deprecated and ignored: baton-context handles are sealed, not stored; remove it`,
      );
  }

  let exchanger: ExchangeClient | undefined;
  let closed = false;
  // Why the STS metadata could not be used yet, for problems(): the URL and the error.
  let discoveryFailure: string | undefined;
  const makeExchanger = (tokenEndpoint: string): void => {
    exchanger = createTokenExchanger({
      tokenEndpoint,
      clientId: config.sts.clientId,
      clientSecret: config.sts.clientSecret,
      authMethod: stsAuthMethod(config),
      ...(stsDispatcher === undefined ? {} : { dispatcher: stsDispatcher }),
      cache: tokenCache,
      config: config.exchange,
      logger,
      tracing: deps.tracing,
      now,
    });
  };
  if (config.sts.tokenEndpoint !== undefined) makeExchanger(config.sts.tokenEndpoint);
  else
    void discoverTokenEndpoint(
      config.sts.issuer,
      config.jwks.timeoutMs,
      logger,
      () => closed,
      stsDispatcher,
      (failure) => (discoveryFailure = failure),
    ).then((endpoint) => endpoint !== undefined && !closed && makeExchanger(endpoint));

  void policy
    .start()
    .catch((error: unknown) =>
      logger.error(
        { event: 'policy_start_failed', err: error instanceof Error ? error.message : String(error) },
        'policy source failed to start',
      ),
    );
  // Readiness waits for the STS keys: retry the first fetch until it lands, not just at the next periodic refresh.
  for (const keys of [stsKeys, ...externalKeys]) void fetchUntilReady(keys, logger, () => closed);

  return {
    policy,
    verifier,
    verifiedCache,
    handles,
    exchanger: () => exchanger,
    waitingFor() {
      const missing: string[] = [];
      // A policy that does not name this service refuses every call to and from it: not ready either.
      if (!policy.ready() || policy.current()?.hasService(config.service) === false) missing.push('policy');
      if (!stsKeys.ready()) missing.push('sts keys');
      if (exchanger === undefined) missing.push('token endpoint');
      return missing;
    },
    problems() {
      const found: string[] = [];
      const held = policy.current();
      if (held === undefined) {
        const problem = policy.problem();
        if (problem !== undefined) found.push(`no usable call-graph policy: ${problem}`);
      } else if (!held.hasService(config.service)) {
        found.push(
          `service '${config.service}' is not in call-graph policy '${held.name}' (version ${policy.version() ?? '?'}): every call to or from it would be refused; add it to the policy or fix the service name`,
        );
      }
      // The STS's keys and token endpoint come from one place: name the URL and the error once.
      const sts =
        (stsKeys.ready() ? undefined : stsKeys.lastError?.()) ??
        (exchanger === undefined ? discoveryFailure : undefined);
      if (sts !== undefined) {
        const configured = [
          'sts.issuer',
          ...(config.sts.jwksUri === undefined ? [] : ['sts.jwksUri']),
          ...(config.sts.tokenEndpoint === undefined ? [] : ['sts.tokenEndpoint']),
        ].join(', ');
        found.push(
          `STS ${config.sts.issuer} not usable: ${sts}; check ${configured} and that the STS is up and reachable from this sidecar`,
        );
      }
      return found;
    },
    async close() {
      closed = true;
      await exchanger?.close();
      await tokenCache.close();
      await policy.close();
      stsKeys.close();
      for (const keys of externalKeys) keys.close();
    },
  };
}

/** The shared tier's settings, key files read now: a missing or bad key stops the sidecar here, before it serves. */
function redisTier(service: string, redis: SidecarRedisConfig, Redis: RedisClass): RedisTierOptions {
  return {
    Redis,
    url: redis.url,
    service,
    credentials: { username: redis.username ?? sidecarRedisUser(service), passwordFile: redis.passwordFile },
    sealKeys: loadSealKeys(redis.sealKeyFile, redis.previousSealKeyFile),
    commandTimeoutMs: redis.commandTimeoutMs,
  };
}

function policySource(config: CollaboratorsConfig, logger: Logger, dispatcher: Dispatcher | undefined): PolicySource {
  // checkSidecarConfig has made sure of exactly one source, and a key with a URL.
  const { file, publicKey: publicKeyFile } = config.policy;
  let publicKey: string | undefined;
  if (file === undefined) {
    try {
      publicKey = readFileSync(publicKeyFile as string, 'utf8');
    } catch {
      throw new ConfigError('sidecar config', 'policy.publicKey', 'a readable PEM file');
    }
  }
  return policySourceFor(config.policy, publicKey, { logger, dispatcher });
}

async function fetchUntilReady(keys: KeySource, logger: Logger, closed: () => boolean): Promise<void> {
  for (let attempt = 0; !closed() && !keys.ready(); attempt++) {
    try {
      await keys.refresh();
    } catch {
      if (attempt === 0) logger.warn({ event: 'keys_unavailable' }, 'issuer keys not fetched yet; retrying');
    }
    if (keys.ready()) return;
    await new Promise((resolve) => setTimeout(resolve, Math.min(5_000, 200 * 2 ** attempt)).unref());
  }
}

/**
 * RFC 8414 §3: the token endpoint from the issuer's metadata (the
 * well-known segment inserted before an issuer's path, §3.1; the metadata's
 * issuer identical to the one asked for, §3.3), retried until found or closed.
 */
async function discoverTokenEndpoint(
  issuer: string,
  timeoutMs: number,
  logger: Logger,
  closed: () => boolean,
  dispatcher: Dispatcher | undefined,
  onFailure: (failure: string | undefined) => void,
): Promise<string | undefined> {
  for (let attempt = 0; !closed(); attempt++) {
    try {
      const endpoint = metadataEndpoint(
        await discoverMetadata(issuer, {
          timeoutMs,
          maxBytes: 1024 * 1024,
          ...(dispatcher === undefined ? {} : { dispatcher }),
        }),
        'token_endpoint',
        issuer,
      );
      onFailure(undefined);
      return endpoint;
    } catch (error) {
      onFailure(describe(error));
      if (attempt === 0)
        logger.warn(
          { event: 'sts_discovery_failed', err: { message: describe(error) } },
          'STS metadata unusable or not reachable; retrying',
        );
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(5_000, 200 * 2 ** attempt)).unref());
  }
  return undefined;
}
