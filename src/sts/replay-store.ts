/**
 * Single-use identifiers: `jti`s of `private_key_jwt` client assertions
 * (RFC 7523 §3 item 7) and of actor tokens. With Redis the set is shared by
 * every STS replica (`SET key 1 PX ttl NX`, as the STS's own ACL user);
 * without it, or while Redis cannot be used, an in-process set keeps them.
 */
import { createDegradingRedis, type RedisClass, type RedisCredentials } from '../redis/client.ts';
import { STS_KEY_PREFIX } from '../redis/config.ts';
import { labelledSeries, renderFamily, series } from '../telemetry/prometheus-text.ts';
import type { Logger } from 'pino';

export interface ReplayStore {
  /** True the first time `id` is seen before `expiresAtMs`; false for a replay. */
  claim(id: string, expiresAtMs: number): Promise<boolean>;
  /** Prometheus text for the STS's `/metrics`, where the store has something to say. */
  renderMetrics?(): string;
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
  /** ioredis's client class (src/redis/client.ts `loadRedis`), loaded only when Redis is configured. */
  readonly Redis: RedisClass;
  readonly url: string;
  /** The STS's own ACL user (docs/sts.md): it may SET under `baton:_sts:*` and nothing else. */
  readonly credentials: RedisCredentials;
  readonly keyPrefix?: string;
  readonly commandTimeoutMs: number;
  readonly logger: Logger;
  readonly now?: () => number;
}

/**
 * While Redis cannot be used (down, hung, or refusing this user: a wrong
 * password or a missing ACL permission are treated as an outage), each
 * replica keeps claiming ids in its own set: a replay at the same replica is
 * still refused, and an id spent then stays spent after Redis returns. What
 * is lost is only the sharing between replicas (docs/sts.md).
 */
export function createRedisReplayStore(options: RedisReplayStoreOptions): ReplayStore {
  const now = options.now ?? Date.now;
  const prefix = options.keyPrefix ?? `${STS_KEY_PREFIX}jti:`;
  const fallback = createMemoryReplayStore({ now });
  const faults = labelledSeries('fault');
  const available = series();
  const redis = createDegradingRedis({
    Redis: options.Redis,
    url: options.url,
    credentials: options.credentials,
    commandTimeoutMs: options.commandTimeoutMs,
    logger: options.logger,
    purpose: 'replay store',
    onState(state) {
      available.value = state === 'available' ? 1 : 0;
      if (state !== 'available') faults.add(state);
    },
    now,
  });
  return {
    async claim(id, expiresAtMs) {
      const ttl = Math.max(1, Math.ceil(expiresAtMs - now()));
      // Recorded locally too, so an id seen while Redis was down stays spent when it comes back.
      const local = await fallback.claim(id, expiresAtMs);
      if (!local || !redis.usable()) return local;
      try {
        const claimed = (await redis.client.set(prefix + id, '1', 'PX', ttl, 'NX')) === 'OK';
        redis.succeeded();
        return claimed;
      } catch (error) {
        redis.failed(error);
        return true;
      }
    },
    renderMetrics() {
      const lines: string[] = [];
      renderFamily(
        lines,
        'baton_sts_redis_available',
        'gauge',
        'Whether replay protection is shared through Redis (1) or kept by this replica alone (0).',
        [available],
      );
      renderFamily(
        lines,
        'baton_sts_redis_faults_total',
        'counter',
        'Times the shared replay store became unusable and this replica fell back to its own, by fault: unavailable, auth (wrong ACL user or password), noperm.',
        faults.series(),
      );
      return lines.join('\n') + '\n';
    },
    async close() {
      redis.close();
      await fallback.close();
    },
  };
}
