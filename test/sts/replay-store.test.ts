import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMemoryReplayStore, createRedisReplayStore } from '../../src/sts/replay-store.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { startRedis } from '../helpers/redis.ts';

const logger = createLogger({ name: 'test', level: 'silent' });

describe('replay store for single-use jti', () => {
  it('accepts an id once and refuses it again until it expires', async () => {
    let now = 0;
    const store = createMemoryReplayStore({ now: () => now });
    assert.equal(await store.claim('a', 1000), true);
    assert.equal(await store.claim('a', 1000), false);
    now = 1001;
    assert.equal(await store.claim('a', 2000), true);
  });

  it('fails closed when full of live ids rather than evicting one', async () => {
    const store = createMemoryReplayStore({ maxEntries: 2, now: () => 0 });
    assert.equal(await store.claim('a', 1000), true);
    assert.equal(await store.claim('b', 1000), true);
    assert.equal(await store.claim('c', 1000), false);
  });

  it('shares spent ids between replicas through Redis and keeps working when Redis goes away', async (t) => {
    const redis = await startRedis();
    t.after(() => redis.stop());
    const replicaA = createRedisReplayStore({ url: redis.url, logger });
    const replicaB = createRedisReplayStore({ url: redis.url, logger });
    t.after(async () => {
      await replicaA.close();
      await replicaB.close();
    });
    const expires = Date.now() + 60_000;
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(await replicaA.claim('jti-1', expires), true);
    assert.equal(await replicaB.claim('jti-1', expires), false);
    await redis.process.stop('SIGKILL');
    assert.equal(await replicaA.claim('jti-2', expires), true);
    assert.equal(await replicaA.claim('jti-2', expires), false);
  });
});
