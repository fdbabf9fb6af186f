/**
 * Exchanged tokens, tiered: an in-process LRU in front of an optional
 * shared Redis, so replicas of a service reuse each other's exchanges.
 * Redis is an optimisation, never a dependency: short command timeouts, no
 * offline queue, and any failure reads as a miss (DESIGN "Redis down").
 *
 * Redis holds bearer tokens: it must be private to the mesh. With
 * `encryptionKey` set, values are sealed with AES-256-GCM, bound to their
 * key so one entry cannot be replayed under another.
 */
import { createCipheriv, createDecipheriv, hash, randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from '../../telemetry/logger.ts';

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
  readonly url: string;
  readonly keyPrefix?: string;
  readonly commandTimeoutMs?: number;
  /** 32 bytes, base64 or base64url. */
  readonly encryptionKey?: string;
}

export interface TokenCacheOptions {
  readonly maxEntries?: number;
  readonly redis?: RedisTierOptions;
  readonly logger: Logger;
  /** Milliseconds. */
  readonly now?: () => number;
}

export function createTokenCache(options: TokenCacheOptions): TokenCache {
  const now = options.now ?? Date.now;
  const local = createLru(options.maxEntries ?? 10_000, now);
  const remote = options.redis === undefined ? undefined : createRedisTier(options.redis, options.logger);
  return {
    peek: (key) => local.get(key),
    async get(key) {
      const hit = local.get(key);
      if (hit !== undefined || remote === undefined) return hit;
      const shared = await remote.get(key);
      if (shared === undefined || shared.expiresAt * 1000 <= now()) return undefined;
      local.set(key, shared);
      return shared;
    },
    async set(key, token) {
      local.set(key, token);
      const ttlMs = token.expiresAt * 1000 - now();
      if (remote !== undefined && ttlMs > 0) await remote.set(key, token, ttlMs);
    },
    async close() {
      await remote?.close();
    },
  };
}

function createLru(max: number, now: () => number): { get(key: string): CachedToken | undefined; set(key: string, token: CachedToken): void } {
  const entries = new Map<string, CachedToken>();
  return {
    get(key) {
      const token = entries.get(key);
      if (token === undefined) return undefined;
      entries.delete(key);
      if (token.expiresAt * 1000 <= now()) return undefined;
      entries.set(key, token);
      return token;
    },
    set(key, token) {
      entries.delete(key);
      entries.set(key, token);
      while (entries.size > max) {
        const oldest = entries.keys().next().value;
        if (oldest === undefined) break;
        entries.delete(oldest);
      }
    },
  };
}

interface RedisTier {
  get(key: string): Promise<CachedToken | undefined>;
  set(key: string, token: CachedToken, ttlMs: number): Promise<void>;
  close(): Promise<void>;
}

function createRedisTier(options: RedisTierOptions, logger: Logger): RedisTier {
  const prefix = options.keyPrefix ?? 'baton:token:';
  const sealKey = options.encryptionKey === undefined ? undefined : decodeKey(options.encryptionKey);
  const client = new Redis(options.url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: options.commandTimeoutMs ?? 50,
    connectTimeout: 500,
    enableAutoPipelining: true,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
  });
  let available: boolean | undefined;
  // Logged once per transition: a dead Redis must not flood the log, or the hot path.
  const transition = (up: boolean, reason?: string): void => {
    if (available === up) return;
    available = up;
    if (up) logger.info({ cache: 'redis' }, 'redis token cache available');
    else logger.warn({ cache: 'redis', reason }, 'redis token cache unavailable; using the in-process cache only');
  };
  client.on('ready', () => transition(true));
  client.on('error', (error: Error) => transition(false, (error as { code?: string }).code ?? error.name));
  client.on('end', () => transition(false, 'connection ended'));
  client.connect().catch(() => {});

  const redisKey = (key: string): string => prefix + hash('sha256', key, 'base64url');

  return {
    async get(key) {
      if (client.status !== 'ready') return undefined;
      const name = redisKey(key);
      try {
        const raw = await client.get(name);
        return raw === null ? undefined : decodeValue(sealKey === undefined ? raw : open(sealKey, raw, name));
      } catch (error) {
        transition(false, errorReason(error));
        return undefined;
      }
    },
    async set(key, token, ttlMs) {
      if (client.status !== 'ready') return;
      const name = redisKey(key);
      const value = JSON.stringify({ accessToken: token.accessToken, expiresAt: token.expiresAt, scope: token.scope, issuedTokenType: token.issuedTokenType });
      try {
        await client.set(name, sealKey === undefined ? value : seal(sealKey, value, name), 'PX', Math.ceil(ttlMs));
      } catch (error) {
        transition(false, errorReason(error));
      }
    },
    async close() {
      client.disconnect();
    },
  };
}

function decodeValue(raw: string | undefined): CachedToken | undefined {
  if (raw === undefined) return undefined;
  try {
    const value = JSON.parse(raw) as Record<string, unknown>;
    const { accessToken, expiresAt, scope, issuedTokenType } = value;
    if (typeof accessToken !== 'string' || typeof expiresAt !== 'number' || typeof scope !== 'string' || typeof issuedTokenType !== 'string') return undefined;
    return { accessToken, expiresAt, scope, issuedTokenType };
  } catch {
    return undefined;
  }
}

function decodeKey(text: string): Buffer {
  const key = Buffer.from(text, text.includes('+') || text.includes('/') ? 'base64' : 'base64url');
  if (key.length !== 32) throw new TypeError(`redis.encryptionKey: expected 32 bytes (base64), got ${key.length}`);
  return key;
}

function seal(key: Buffer, plaintext: string, aad: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return `v1.${iv.toString('base64url')}.${body.toString('base64url')}.${cipher.getAuthTag().toString('base64url')}`;
}

function open(key: Buffer, sealed: string, aad: string): string | undefined {
  const [version, iv, body, tag] = sealed.split('.');
  if (version !== 'v1' || iv === undefined || body === undefined || tag === undefined) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'), { authTagLength: 16 });
    decipher.setAAD(Buffer.from(aad));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}

function errorReason(error: unknown): string {
  if (error instanceof Error) return (error as { code?: string }).code ?? error.message.slice(0, 80);
  return 'unknown';
}
