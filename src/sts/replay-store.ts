/**
 * Single-use identifiers: `jti`s of `private_key_jwt` client assertions
 * (RFC 7523 §3 item 7) and of actor tokens. With Redis the set is shared by
 * every STS replica (`SET key 1 PX ttl NX`); without it, or while Redis
 * is unreachable, an in-process set keeps them.
 */
import { Redis } from 'ioredis';
import type { Logger } from '../telemetry/logger.ts';

export interface ReplayStore {
  /** True the first time `id` is seen before `expiresAtMs`; false for a replay. */
  claim(id: string, expiresAtMs: number): Promise<boolean>;
  close(): Promise<void>;
}

export interface MemoryReplayStoreOptions {
  readonly maxEntries?: number;
  readonly now?: () => number;
}

export function createMemoryReplayStore(options: MemoryReplayStoreOptions = {}): ReplayStore {
  const now = options.now ?? Date.now;
  const maxEntries = options.maxEntries ?? 100_000;
  const seen = new Map<string, number>();
  const sweep = (): void => {
    const at = now();
    for (const [id, expiresAt] of seen) if (expiresAt <= at) seen.delete(id);
  };
  return {
    async claim(id, expiresAtMs) {
      const at = now();
      const known = seen.get(id);
      if (known !== undefined && known > at) return false;
      if (seen.size >= maxEntries) sweep();
      // Evicting a live id would let it be replayed: refuse instead (fail closed).
      if (seen.size >= maxEntries) return false;
      seen.set(id, Math.max(expiresAtMs, at + 1));
      return true;
    },
    async close() {
      seen.clear();
    },
  };
}

export interface RedisReplayStoreOptions {
  readonly url: string;
  readonly keyPrefix?: string;
  readonly commandTimeoutMs?: number;
  readonly logger: Logger;
  readonly now?: () => number;
}

export function createRedisReplayStore(options: RedisReplayStoreOptions): ReplayStore {
  const now = options.now ?? Date.now;
  const prefix = options.keyPrefix ?? 'baton:sts:jti:';
  const fallback = createMemoryReplayStore({ now });
  const redis = new Redis(options.url, {
    commandTimeout: options.commandTimeoutMs ?? 250,
    connectTimeout: 1000,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    lazyConnect: false,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
  });
  let degraded = false;
  redis.on('error', (error: Error) => {
    if (!degraded) options.logger.warn({ err: { message: error.message } }, 'redis unreachable: replay protection falls back to this replica');
    degraded = true;
  });
  redis.on('ready', () => {
    if (degraded) options.logger.info('redis reachable again: replay protection shared across replicas');
    degraded = false;
  });
  return {
    async claim(id, expiresAtMs) {
      const ttl = Math.max(1, Math.ceil(expiresAtMs - now()));
      // Recorded locally too, so an id seen while Redis was down stays spent when it comes back.
      const local = await fallback.claim(id, expiresAtMs);
      if (!local) return false;
      try {
        return (await redis.set(prefix + id, '1', 'PX', ttl, 'NX')) === 'OK';
      } catch (error) {
        if (!degraded) options.logger.warn({ err: { message: (error as Error).message } }, 'redis command failed: replay protection falls back to this replica');
        return true;
      }
    },
    async close() {
      redis.disconnect();
      await fallback.close();
    },
  };
}
