import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createContextHandleStore } from '../../src/sidecar/context-handles.ts';
import type { VerifiedToken } from '../../src/token/verified-token.ts';

const verified = (expiresAt: number): VerifiedToken => ({
  claims: {},
  issuer: 'https://sts.test',
  kind: 'mesh',
  subject: 'alice',
  subjectIssuer: 'https://idp.test',
  user: true,
  chain: ['gateway'],
  scopes: new Set(['orders:read']),
  txn: 'txn-1',
  acr: undefined,
  authTime: undefined,
  clientId: 'gateway',
  expiresAt,
  jti: undefined,
  confirmation: undefined,
});

describe('context handle store', () => {
  it('issues an opaque handle that resolves to the subject token and its verified identity', () => {
    const store = createContextHandleStore({ now: () => 0 });
    const handle = store.issue('token-a', verified(100));
    assert.match(handle, /^bctx_[A-Za-z0-9_-]{43}$/);
    assert.ok(!handle.includes('token-a'));
    const entry = store.resolve(handle);
    assert.equal(entry?.subjectToken, 'token-a');
    assert.equal(entry?.verified.subject, 'alice');
  });

  it('gives the same live token the same handle, so a hot path does not grow the store', () => {
    const store = createContextHandleStore({ now: () => 0 });
    const first = store.issue('token-a', verified(100));
    for (let i = 0; i < 1000; i++) assert.equal(store.issue('token-a', verified(100)), first);
    assert.equal(store.size, 1);
    assert.notEqual(store.issue('token-b', verified(100)), first);
  });

  it('stops resolving a handle once its token has expired, and then issues a new one', () => {
    let clock = 0;
    const store = createContextHandleStore({ now: () => clock });
    const handle = store.issue('token-a', verified(10));
    clock = 9_999;
    assert.ok(store.resolve(handle));
    clock = 10_000;
    assert.equal(store.resolve(handle), undefined);
    assert.equal(store.size, 0);
    const renewed = store.issue('token-a', verified(20));
    assert.notEqual(renewed, handle);
  });

  it('refuses unknown and malformed handles', () => {
    const store = createContextHandleStore({ now: () => 0 });
    store.issue('token-a', verified(100));
    assert.equal(store.resolve('bctx_' + 'A'.repeat(43)), undefined);
    assert.equal(store.resolve('token-a'), undefined);
    assert.equal(store.resolve('x'.repeat(100_000)), undefined);
  });

  it('evicts the least recently used handle beyond maxEntries', () => {
    const store = createContextHandleStore({ maxEntries: 2, now: () => 0 });
    const a = store.issue('a', verified(100));
    const b = store.issue('b', verified(100));
    store.resolve(a);
    const c = store.issue('c', verified(100));
    assert.ok(store.resolve(a));
    assert.equal(store.resolve(b), undefined);
    assert.ok(store.resolve(c));
    assert.equal(store.size, 2);
    assert.notEqual(store.issue('b', verified(100)), b, 'an evicted token gets a fresh handle');
  });
});
