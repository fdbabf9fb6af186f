import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createVerifiedTokenCache } from '../../src/token/verified-cache.ts';
import type { VerifiedToken } from '../../src/token/verified-token.ts';
import { verifiedMeshToken } from '../helpers/token.ts';

const verified = (expiresAt: number): VerifiedToken => verifiedMeshToken({ expiresAt });

describe('verified token cache', () => {
  it('returns an entry only for the same token and audience', () => {
    const cache = createVerifiedTokenCache({ now: () => 1_000_000 });
    const entry = verified(2_000);
    cache.set('t1', 'orders', entry);
    assert.equal(cache.get('t1', 'orders'), entry);
    assert.equal(cache.get('t1', 'payments'), undefined);
    assert.equal(cache.get('t2', 'orders'), undefined);
  });

  it('forgets an introspected entry at reuseUntil, before its exp, so a revocation is seen', () => {
    let clock = 1_000_000;
    const cache = createVerifiedTokenCache({ now: () => clock });
    cache.set('t1', 'gateway', { ...verified(5_000), reuseUntil: 1_300 });
    clock = 1_299_999;
    assert.ok(cache.get('t1', 'gateway'));
    clock = 1_300_000;
    assert.equal(cache.get('t1', 'gateway'), undefined);
  });

  it('forgets an entry at the token exp', () => {
    let clock = 1_000_000;
    const cache = createVerifiedTokenCache({ now: () => clock });
    cache.set('t1', 'orders', verified(1_010));
    clock = 1_009_999;
    assert.ok(cache.get('t1', 'orders'));
    clock = 1_010_000;
    assert.equal(cache.get('t1', 'orders'), undefined);
    assert.equal(cache.size, 0);
  });

  it('evicts the least recently used entry beyond max', () => {
    const cache = createVerifiedTokenCache({ max: 2, now: () => 0 });
    cache.set('a', 'x', verified(10));
    cache.set('b', 'x', verified(10));
    cache.get('a', 'x');
    cache.set('c', 'x', verified(10));
    assert.ok(cache.get('a', 'x'));
    assert.equal(cache.get('b', 'x'), undefined);
    assert.ok(cache.get('c', 'x'));
    assert.equal(cache.size, 2);
  });
});
