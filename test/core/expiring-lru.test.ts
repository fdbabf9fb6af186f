import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createExpiringLru } from '../../src/core/expiring-lru.ts';

/** A clock the test moves by hand. */
function manualClock(start = 1_000_000): { now: () => number; advance(ms: number): void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

describe('expiring LRU', () => {
  it('returns a value until its expiry and never at or after it', () => {
    const clock = manualClock();
    const lru = createExpiringLru<string, string>({ max: 10, now: clock.now });
    assert.equal(lru.set('a', 'A', clock.now() + 1_000), true);
    clock.advance(999);
    assert.equal(lru.get('a'), 'A');
    clock.advance(1);
    assert.equal(lru.get('a'), undefined);
    assert.equal(lru.size, 0, 'an expired entry found by get is removed');
  });

  it('does not store a value that has already expired', () => {
    const clock = manualClock();
    const lru = createExpiringLru<string, string>({ max: 10, now: clock.now });
    assert.equal(lru.set('a', 'A', clock.now()), false);
    assert.equal(lru.size, 0);
  });

  it('evicts the least recently used entry beyond max, counting a get as a use', () => {
    const clock = manualClock();
    const removed: string[] = [];
    const lru = createExpiringLru<string, number>({ max: 2, now: clock.now, onRemove: (key) => removed.push(key) });
    const later = clock.now() + 60_000;
    lru.set('a', 1, later);
    lru.set('b', 2, later);
    assert.equal(lru.get('a'), 1);
    lru.set('c', 3, later);
    assert.equal(lru.size, 2);
    assert.equal(lru.get('b'), undefined);
    assert.equal(lru.get('a'), 1);
    assert.equal(lru.get('c'), 3);
    assert.deepEqual(removed, ['b']);
  });

  it('replaces a value set again under the same key without evicting another', () => {
    const clock = manualClock();
    const removed: string[] = [];
    const lru = createExpiringLru<string, number>({ max: 2, now: clock.now, onRemove: (key) => removed.push(key) });
    const later = clock.now() + 60_000;
    lru.set('a', 1, later);
    lru.set('b', 2, later);
    lru.set('a', 10, later);
    assert.equal(lru.size, 2);
    assert.equal(lru.get('a'), 10);
    assert.equal(lru.get('b'), 2);
    assert.deepEqual(removed, []);
  });

  it('drops expired entries before evicting a live one', () => {
    const clock = manualClock();
    const lru = createExpiringLru<string, number>({ max: 2, now: clock.now });
    lru.set('live', 1, clock.now() + 60_000);
    lru.set('short', 2, clock.now() + 10);
    lru.get('short');
    clock.advance(10);
    lru.set('new', 3, clock.now() + 60_000);
    assert.equal(lru.get('live'), 1, 'the least recently used entry stays: an expired one made room');
    assert.equal(lru.get('new'), 3);
  });

  it('refuses a new key when full of live entries in refuse mode, and every live entry keeps working', () => {
    const clock = manualClock();
    const lru = createExpiringLru<string, number>({ max: 2, now: clock.now, whenFull: 'refuse' });
    lru.set('a', 1, clock.now() + 5_000);
    lru.set('b', 2, clock.now() + 60_000);
    assert.equal(lru.set('c', 3, clock.now() + 60_000), false);
    assert.equal(lru.get('a'), 1);
    assert.equal(lru.get('b'), 2);
    assert.equal(lru.earliestExpiry, clock.now() + 5_000);
    clock.advance(5_000);
    assert.equal(lru.set('c', 3, clock.now() + 60_000), true, 'an expired entry made room');
    assert.equal(lru.get('c'), 3);
  });

  it('stores nothing at max 0', () => {
    const clock = manualClock();
    const lru = createExpiringLru<string, number>({ max: 0, now: clock.now });
    assert.equal(lru.set('a', 1, clock.now() + 60_000), false);
    assert.equal(lru.get('a'), undefined);
  });

  it('reports deleted and expired entries to onRemove, once each', () => {
    const clock = manualClock();
    const removed: Array<[string, number]> = [];
    const lru = createExpiringLru<string, number>({
      max: 10,
      now: clock.now,
      onRemove: (key, value) => removed.push([key, value]),
    });
    lru.set('a', 1, clock.now() + 60_000);
    lru.set('b', 2, clock.now() + 10);
    lru.delete('a');
    lru.delete('a');
    clock.advance(10);
    lru.get('b');
    lru.get('b');
    assert.deepEqual(removed, [
      ['a', 1],
      ['b', 2],
    ]);
  });
});
