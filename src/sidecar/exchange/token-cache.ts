/**
 * Exchanged tokens, tiered: an in-process LRU in front of an optional
 * shared Redis, so replicas of a service reuse each other's exchanges.
 * Redis is an optimisation, never a dependency: short command timeouts, no
 * offline queue, and any failure reads as a miss (DESIGN "Redis down").
 *
 * Redis is shared by every service, so what a service writes there must be
 * useless to the others and to anyone else who reads it (issue #14): the
 * tier has no unsealed mode. Values are sealed under this service's key,
 * bound to the service and the entry's Redis key (token-seal.ts), and the
 * connection is this service's own ACL user, limited to its own prefix.
 */
import { hash } from 'node:crypto';
import { createExpiringLru } from '../../core/expiring-lru.ts';
import { createDegradingRedis, type RedisClass, type RedisCredentials, type RedisFault } from '../../redis/client.ts';
import { sidecarKeyPrefix } from '../../redis/config.ts';
import type { Logger } from 'pino';
import { open, seal, type SealKeys } from './token-seal.ts';

export interface CachedToken {
  readonly accessToken: string;
  /** Epoch seconds. */
  readonly expiresAt: number;
  readonly scope: string;
  readonly issuedTokenType: string;
}

export interface TokenCache {
  /** The in-process tier only, synchronously: the hot path's answer when it has one. */
  peek(key: string): CachedToken | undefined;
  get(key: string): Promise<CachedToken | undefined>;
  set(key: string, token: CachedToken): Promise<void>;
  close(): Promise<void>;
}

export interface RedisTierOptions {
  /** ioredis's client class (src/redis/client.ts `loadRedis`), loaded only when Redis is configured. */
  readonly Redis: RedisClass;
  readonly url: string;
  /** Whose entries these are: the key prefix and the sealed values' associated data. */
  readonly service: string;
  readonly credentials: RedisCredentials;
  readonly sealKeys: SealKeys;
  readonly commandTimeoutMs: number;
}

/** What the Redis tier reports for metrics: a value that would not open, or a change of state. */
export type RedisTierEvent = 'unsealable' | 'available' | RedisFault;

export interface TokenCacheOptions {
  readonly maxEntries?: number;
  readonly redis?: RedisTierOptions;
  readonly logger: Logger;
  readonly onRedisEvent?: (event: RedisTierEvent) => void;
  /** Milliseconds. */
  readonly now?: () => number;
}

export function createTokenCache(options: TokenCacheOptions): TokenCache {
  const now = options.now ?? Date.now;
  const local = createExpiringLru<string, CachedToken>({ max: options.maxEntries ?? 10_000, now });
  const remote =
    options.redis === undefined
      ? undefined
      : createRedisTier(options.redis, options.logger, options.onRedisEvent ?? (() => {}), now);
  return {
    peek: (key) => local.get(key),
    async get(key) {
      const hit = local.get(key);
      if (hit !== undefined || remote === undefined) return hit;
      const shared = await remote.get(key);
      if (shared === undefined || shared.expiresAt * 1000 <= now()) return undefined;
      local.set(key, shared, shared.expiresAt * 1000);
      return shared;
    },
    async set(key, token) {
      local.set(key, token, token.expiresAt * 1000);
      const ttlMs = token.expiresAt * 1000 - now();
      if (remote !== undefined && ttlMs > 0) await remote.set(key, token, ttlMs);
    },
    async close() {
      await remote?.close();
    },
  };
}

interface RedisTier {
  get(key: string): Promise<CachedToken | undefined>;
  set(key: string, token: CachedToken, ttlMs: number): Promise<void>;
  close(): Promise<void>;
}

function createRedisTier(
  options: RedisTierOptions,
  logger: Logger,
  report: (event: RedisTierEvent) => void,
  now: () => number,
): RedisTier {
  // `baton:<service>:`, the prefix the service's ACL user is limited to.
  const prefix = sidecarKeyPrefix(options.service);
  const redis = createDegradingRedis({
    Redis: options.Redis,
    url: options.url,
    credentials: options.credentials,
    commandTimeoutMs: options.commandTimeoutMs,
    logger,
    purpose: 'token cache',
    onState: report,
    now,
  });
  const { client } = redis;
  // The cache key holds the subject token: only its digest names the entry.
  const redisKey = (key: string): string => prefix + hash('sha256', key, 'base64url');
  const associatedData = (name: string): string => `baton-token-cache\0${options.service}\0${name}`;

  return {
    async get(key) {
      if (!redis.usable()) return undefined;
      const name = redisKey(key);
      let raw: string | null;
      try {
        raw = await client.get(name);
      } catch (error) {
        redis.failed(error);
        return undefined;
      }
      redis.succeeded();
      if (raw === null) return undefined;
      const value = decodeValue(open(options.sealKeys, raw, associatedData(name)));
      // A blob that does not open (another key, another place, tampered) is a miss: counted, never an error.
      if (value === undefined) report('unsealable');
      return value;
    },
    async set(key, token, ttlMs) {
      if (!redis.usable()) return;
      const name = redisKey(key);
      const value = JSON.stringify({
        accessToken: token.accessToken,
        expiresAt: token.expiresAt,
        scope: token.scope,
        issuedTokenType: token.issuedTokenType,
      });
      try {
        await client.set(name, seal(options.sealKeys, value, associatedData(name)), 'PX', Math.ceil(ttlMs));
        redis.succeeded();
      } catch (error) {
        redis.failed(error);
      }
    },
    async close() {
      redis.close();
    },
  };
}

function decodeValue(raw: string | undefined): CachedToken | undefined {
  if (raw === undefined) return undefined;
  try {
    const value = JSON.parse(raw) as Record<string, unknown>;
    const { accessToken, expiresAt, scope, issuedTokenType } = value;
    if (
      typeof accessToken !== 'string' ||
      typeof expiresAt !== 'number' ||
      typeof scope !== 'string' ||
      typeof issuedTokenType !== 'string'
    )
      return undefined;
    return { accessToken, expiresAt, scope, issuedTokenType };
  } catch {
    return undefined;
  }
}
