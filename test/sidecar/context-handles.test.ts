import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isBatonError } from '../../src/core/errors.ts';
import { createContextHandleStore } from '../../src/sidecar/context-handles.ts';
import type { VerifiedToken } from '../../src/token/verified-token.ts';
import { HandlesExhaustedError } from '../../src/sidecar/errors.ts';

const verified = (expiresAt: number, subject = 'alice'): VerifiedToken => ({
  claims: {},
  issuer: 'https://sts.test',
  kind: 'mesh',
  subject,
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

  it('refuses a new handle when full of live ones, and never drops a live handle for it', () => {
    const store = createContextHandleStore({ maxEntries: 2, now: () => 0 });
    const a = store.issue('a', verified(100, 'alice'));
    const b = store.issue('b', verified(100, 'bob'));
    assert.throws(() => store.issue('c', verified(100, 'carol')), (e: unknown) => isBatonError(e) && e.code === HandlesExhaustedError.code && e.status === 503);
    assert.ok(store.resolve(a));
    assert.ok(store.resolve(b));
    assert.equal(store.size, 2);
  });

  it('evicts expired handles first when full', () => {
    let clock = 0;
    const store = createContextHandleStore({ maxEntries: 3, now: () => clock });
    const live = store.issue('live', verified(100, 'alice'));
    store.issue('short-1', verified(5, 'bob'));
    const live2 = store.issue('live-2', verified(100, 'carol'));
    clock = 5_000;
    const c = store.issue('c', verified(100, 'dave'));
    assert.ok(store.resolve(live));
    assert.ok(store.resolve(live2));
    assert.ok(store.resolve(c));
    assert.equal(store.size, 3);
  });

  it('bounds handles per subject: a subject\'s new handle replaces only its own least recently used', () => {
    const store = createContextHandleStore({ maxEntries: 100, maxPerSubject: 2, now: () => 0 });
    const other = store.issue('bob-1', verified(100, 'bob'));
    const a1 = store.issue('alice-1', verified(100));
    const a2 = store.issue('alice-2', verified(100));
    store.resolve(a1);
    const a3 = store.issue('alice-3', verified(100));
    assert.ok(store.resolve(a1), 'recently used, kept');
    assert.equal(store.resolve(a2), undefined, 'least recently used of alice, replaced');
    assert.ok(store.resolve(a3));
    assert.ok(store.resolve(other), 'another subject is never touched');
    for (let i = 0; i < 50; i++) store.issue(`alice-flood-${i}`, verified(100));
    assert.equal(store.size, 3);
    assert.ok(store.resolve(other));
  });
});
