import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMemoryReplayStore } from '../../src/sts/replay-store.ts';

// The Redis-backed store, against a real redis-server: test/e2e/replay-store-redis.test.ts.
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
});
