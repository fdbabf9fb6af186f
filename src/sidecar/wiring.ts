/**
 * The sidecar's collaborators, built from its config: the policy source
 * (signed policy server or a local file), one key set per trusted issuer
 * (the STS; external IdPs at entrypoints), the verifier and its cache, the
 * context-handle store, and the token exchanger once the STS token
 * endpoint is known (configured, or discovered per RFC 8414).
 */
import { readFileSync } from 'node:fs';
import { request } from 'undici';
import type { Logger } from '../telemetry/logger.ts';
import { createFilePolicySource, createPolicyClient } from '../policy/client.ts';
import type { PolicySource } from '../policy/source.ts';
import { createRemoteKeySource, type KeySource } from '../token/key-source.ts';
import { createVerifiedTokenCache } from '../token/verified-cache.ts';
import { createAccessTokenVerifier } from '../token/verifier.ts';
import { createContextHandleStore } from './context-handles.ts';
import { createTokenCache } from './exchange/token-cache.ts';
import { createTokenExchanger } from './exchange/exchanger.ts';
import type { SidecarConfig } from './config.ts';
import type { Collaborators } from './sidecar.ts';
import type { TokenExchanger } from './collaborators.ts';
import { ConfigError } from '../config/config-error.ts';

export async function createCollaborators(config: SidecarConfig, deps: { logger: Logger; now: () => number }): Promise<Collaborators> {
  const { logger, now } = deps;
  const policy = policySource(config, logger);
  const stsKeys = createRemoteKeySource({ issuer: config.sts.issuer, discovery: config.sts.jwksUri === undefined, ...(config.sts.jwksUri === undefined ? {} : { jwksUri: config.sts.jwksUri }), logger, now });
  const externalKeys: KeySource[] = config.externalIssuers.map((e) =>
    createRemoteKeySource({ issuer: e.issuer, discovery: e.jwksUri === undefined, ...(e.jwksUri === undefined ? {} : { jwksUri: e.jwksUri }), logger, now }),
  );
  const verifier = createAccessTokenVerifier({
    issuers: [
      { issuer: config.sts.issuer, keys: stsKeys, kind: 'mesh' },
      ...config.externalIssuers.map((e, i) => ({ issuer: e.issuer, keys: externalKeys[i] as KeySource, kind: 'external' as const, audience: e.audience ?? config.service })),
    ],
    maxTokenBytes: config.limits.maxTokenBytes,
    maxActDepth: config.limits.maxActDepth,
    now,
  });
  const verifiedCache = createVerifiedTokenCache({ max: config.cache.verifiedMaxEntries, now });
  const handles = createContextHandleStore({ maxEntries: config.cache.handleMaxEntries, maxPerSubject: config.cache.handleMaxPerSubject, now });
  const tokenCache = createTokenCache({
    maxEntries: config.cache.maxEntries,
    ...(config.redis === undefined ? {} : { redis: { url: config.redis, keyPrefix: `baton:${config.service}:`, commandTimeoutMs: 50 } }),
    logger,
    now,
  });

  let exchanger: (TokenExchanger & { close(): Promise<void> }) | undefined;
  let closed = false;
  const makeExchanger = (tokenEndpoint: string): void => {
    exchanger = createTokenExchanger({ tokenEndpoint, clientId: config.sts.clientId, clientSecret: config.sts.clientSecret, authMethod: config.sts.authMethod, cache: tokenCache, logger, now });
  };
  if (config.sts.tokenEndpoint !== undefined) makeExchanger(config.sts.tokenEndpoint);
  else void discoverTokenEndpoint(config.sts.issuer, logger, () => closed).then((endpoint) => endpoint !== undefined && !closed && makeExchanger(endpoint));

  void policy.start().catch((error: unknown) => logger.error({ event: 'policy_start_failed', err: error instanceof Error ? error.message : String(error) }, 'policy source failed to start'));
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
      if (!policy.ready()) missing.push('policy');
      if (!stsKeys.ready()) missing.push('sts keys');
      if (exchanger === undefined) missing.push('token endpoint');
      return missing;
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

function policySource(config: SidecarConfig, logger: Logger): PolicySource {
  if (config.policy.file !== undefined) return createFilePolicySource(config.policy.file, { logger });
  if (config.policy.url === undefined || config.policy.publicKey === undefined) {
    throw new ConfigError('sidecar config', 'policy', 'either policy.file, or policy.url with policy.publicKey');
  }
  let publicKey: string;
  try {
    publicKey = readFileSync(config.policy.publicKey, 'utf8');
  } catch {
    throw new ConfigError('sidecar config', 'policy.publicKey', 'a readable PEM file');
  }
  return createPolicyClient({ url: config.policy.url, publicKey, logger, maxAgeSeconds: config.policy.maxAgeSeconds, ...(config.policy.stateFile === undefined ? {} : { stateFile: config.policy.stateFile }) });
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

/** RFC 8414 §3: the token endpoint from the issuer's metadata, retried until found or closed. */
async function discoverTokenEndpoint(issuer: string, logger: Logger, closed: () => boolean): Promise<string | undefined> {
  const url = `${issuer.replace(/\/$/, '')}/.well-known/oauth-authorization-server`;
  for (let attempt = 0; !closed(); attempt++) {
    try {
      const response = await request(url, { headersTimeout: 2_000, bodyTimeout: 2_000 });
      const metadata = (await response.body.json()) as { issuer?: unknown; token_endpoint?: unknown };
      // RFC 8414 §3.3: the metadata's issuer MUST be identical to the one it was fetched for.
      if (response.statusCode === 200 && metadata.issuer === issuer && typeof metadata.token_endpoint === 'string') return metadata.token_endpoint;
      logger.warn({ event: 'sts_discovery_failed', status: response.statusCode }, 'STS metadata unusable; retrying');
    } catch (error) {
      if (attempt === 0) logger.warn({ event: 'sts_discovery_failed', err: (error as { code?: string }).code }, 'STS metadata not reachable; retrying');
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(5_000, 200 * 2 ** attempt)).unref());
  }
  return undefined;
}
