import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createDecisionCache, type DecisionKey } from '../../src/authz/decision-cache.ts';
import type { Decision } from '../../src/policy/language/decision.ts';
import { ruleId } from '../../src/policy/language/rule-id.ts';
import { serviceName } from '../../src/core/service-name.ts';
import { tokenDigest } from '../../src/token/verified-cache.ts';
import type { VerifiedToken } from '../../src/token/verified-token.ts';
import { verifiedMeshToken } from '../helpers/token.ts';

const NOW = 1_800_000_000_000;
const ALLOW: Decision = { allowed: true, rule: ruleId(serviceName('orders'), 0), reason: 'allowed', mode: 'enforce' };
const DENY: Decision = {
  allowed: false,
  rule: ruleId(serviceName('orders'), 0),
  reason: 'no',
  cause: 'method',
  mode: 'enforce',
};

function verified(subject: string, expiresAt = NOW / 1000 + 300): VerifiedToken {
  return verifiedMeshToken({ subject, expiresAt, confirmation: 'thumb' });
}

function key(token: string, overrides: Partial<DecisionKey> = {}): DecisionKey {
  return {
    direction: 'inbound',
    target: 'orders',
    policyVersion: 7,
    tokenDigest: tokenDigest(token),
    peer: 'spiffe://td/ns/demo/sa/gateway thumb',
    method: 'GET',
    path: '/orders',
    ...overrides,
  };
}

describe('the decision cache (baton authz)', () => {
  it("never gives one user's decision for another user's token, whatever else the two requests share", () => {
    let now = NOW;
    const cache = createDecisionCache({ maxEntries: 100, ttlSeconds: 30, now: () => now });
    cache.set(key('token-of-alice'), { verified: verified('alice'), decision: ALLOW });
    assert.equal(cache.get(key('token-of-alice'))?.verified?.subject, 'alice');
    assert.equal(cache.get(key('token-of-bob')), undefined);
    cache.set(key('token-of-bob'), { verified: verified('bob'), decision: DENY });
    assert.equal(cache.get(key('token-of-alice'))?.verified?.subject, 'alice');
    assert.equal(cache.get(key('token-of-bob'))?.verified?.subject, 'bob');
    assert.equal(cache.get(key('token-of-bob'))?.decision.allowed, false);
    now += 1;
    assert.deepEqual(cache.counts, { hit: 4, miss: 1 });
  });

  it('keys on every part: peer, method, path, policy version, direction and target each make another entry', () => {
    const cache = createDecisionCache({ maxEntries: 100, ttlSeconds: 30, now: () => NOW });
    cache.set(key('t'), { verified: verified('alice'), decision: ALLOW });
    for (const other of [
      { peer: 'spiffe://td/ns/demo/sa/payments thumb' },
      { peer: undefined },
      { method: 'POST' },
      { path: '/orders/1' },
      { policyVersion: 8 },
      { direction: 'outbound' as const },
      { target: 'payments' },
      { tokenDigest: undefined },
    ]) {
      assert.equal(cache.get(key('t', other)), undefined, JSON.stringify(other));
    }
    assert.ok(cache.get(key('t')));
  });

  it("keeps no entry past the token's exp or the TTL, whichever comes first", () => {
    let now = NOW;
    const cache = createDecisionCache({ maxEntries: 100, ttlSeconds: 30, now: () => now });
    cache.set(key('short'), { verified: verified('alice', NOW / 1000 + 5), decision: ALLOW });
    cache.set(key('long'), { verified: verified('bob', NOW / 1000 + 300), decision: ALLOW });
    cache.set(key('service'), { verified: undefined, decision: ALLOW });
    now += 5_000;
    assert.equal(cache.get(key('short')), undefined, "at the token's exp");
    assert.ok(cache.get(key('long')));
    now += 25_000;
    assert.equal(cache.get(key('long')), undefined, 'at the TTL');
    assert.equal(cache.get(key('service')), undefined, 'a service-identity decision lives for the TTL');
  });

  it('holds at most maxEntries, and nothing at 0', () => {
    const bounded = createDecisionCache({ maxEntries: 2, ttlSeconds: 30, now: () => NOW });
    for (const t of ['a', 'b', 'c']) bounded.set(key(t), { verified: verified(t), decision: ALLOW });
    assert.equal(bounded.size, 2);
    assert.equal(bounded.get(key('a')), undefined);
    const none = createDecisionCache({ maxEntries: 0, ttlSeconds: 30, now: () => NOW });
    none.set(key('a'), { verified: verified('a'), decision: ALLOW });
    assert.equal(none.get(key('a')), undefined);
  });

  it('cannot be confused by a part holding what would separate two parts of a joined key', () => {
    const cache = createDecisionCache({ maxEntries: 10, ttlSeconds: 30, now: () => NOW });
    cache.set(key('t', { method: 'GET', path: '/a' }), { verified: verified('alice'), decision: ALLOW });
    assert.equal(cache.get(key('t', { method: 'GET","', path: 'a' })), undefined);
  });
});
