import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { createContextHandles, createRequestIds } from '../../src/sidecar/context-handles.ts';

const ids = createRequestIds();
const MAX_TOKEN_BYTES = 8192;
/** Epoch seconds; the clock below is in milliseconds. */
const EXP = 1_000;
const live = { expiresAt: EXP };

/** A JWS-shaped token: canonical base64url segments of random bytes, as long as a real access token. */
function jws(claimsBytes = 600): string {
  return `${randomBytes(36).toString('base64url')}.${randomBytes(claimsBytes).toString('base64url')}.${randomBytes(64).toString('base64url')}`;
}

describe('sealed context handles', () => {
  it('issues a handle that opens to the subject token and the request id it was issued with, and shows neither', () => {
    const handles = createContextHandles({ maxTokenBytes: MAX_TOKEN_BYTES, now: () => 0 });
    const token = jws();
    const request = ids.mint();
    const handle = handles.issue(token, live, request);
    assert.match(handle, /^bctx_[A-Za-z0-9_-]+$/);
    for (const part of [...token.split('.'), request])
      assert.ok(!handle.includes(part.slice(0, 16)), 'nothing of the token or the id is readable in the handle');
    assert.deepEqual(handles.resolve(handle), { subjectToken: token, requestId: request });
  });

  it('gives back exactly the token it sealed: a JWS, an opaque token, a non-canonical spelling, one at the size limit', () => {
    const handles = createContextHandles({ maxTokenBytes: MAX_TOKEN_BYTES, now: () => 0 });
    const largest = `${randomBytes(30).toString('base64url')}.${'A'.repeat(MAX_TOKEN_BYTES - 40 - 2 - 43)}.${randomBytes(32).toString('base64url')}`;
    const tokens = [
      jws(),
      'x'.repeat(43),
      'ya29.a0AfH6SMC-opaque_with.one-dot',
      'a.b.c.d.e',
      'AA..AA',
      'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn1.c2lnB',
      largest,
      'x'.repeat(MAX_TOKEN_BYTES),
    ];
    for (const token of tokens) {
      const request = ids.mint();
      assert.deepEqual(
        handles.resolve(handles.issue(token, live, request)),
        { subjectToken: token, requestId: request },
        token.slice(0, 40),
      );
    }
  });

  it('is about as long as its token: a JWS is sealed as the bytes it encodes', () => {
    const handles = createContextHandles({ maxTokenBytes: MAX_TOKEN_BYTES, now: () => 0 });
    for (const token of [jws(300), jws(900), jws(5000)]) {
      const handle = handles.issue(token, live, ids.mint());
      assert.ok(
        handle.length <= token.length + 70,
        `a ${token.length}-character token gave a ${handle.length}-character handle`,
      );
    }
  });

  it('opens until the token expires, not a clock skew later, and a token issued past its exp never gets a live handle', () => {
    let clock = 0;
    const handles = createContextHandles({ maxTokenBytes: MAX_TOKEN_BYTES, now: () => clock });
    const handle = handles.issue(jws(), live, ids.mint());
    clock = EXP * 1000 - 1;
    assert.ok(handles.resolve(handle));
    clock = EXP * 1000;
    assert.equal(handles.resolve(handle), undefined);
    // Accepted by the verifier inside its clock tolerance, but already past exp: the handle is dead on arrival.
    assert.equal(handles.resolve(handles.issue(jws(), { expiresAt: EXP - 5 }, ids.mint())), undefined);
  });

  it('refuses a handle altered in any byte, cut short, lengthened, respelled, or sealed by another process', () => {
    const handles = createContextHandles({ maxTokenBytes: MAX_TOKEN_BYTES, now: () => 0 });
    const handle = handles.issue(jws(200), live, ids.mint());
    const sealed = Buffer.from(handle.slice(5), 'base64url');
    for (let at = 0; at < sealed.length; at++) {
      const altered = Buffer.from(sealed);
      altered[at] = (altered[at] as number) ^ 0x80;
      assert.equal(handles.resolve(`bctx_${altered.toString('base64url')}`), undefined, `byte ${at} altered`);
    }
    assert.equal(handles.resolve(`bctx_${sealed.subarray(0, -1).toString('base64url')}`), undefined);
    assert.equal(handles.resolve(`bctx_${Buffer.concat([sealed, Buffer.from([0])]).toString('base64url')}`), undefined);
    // The same bytes spelled another way (unused low bits set in the last character): one spelling per handle.
    const last = handle.at(-1) as string;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    if ((handle.length - 5) % 4 !== 0)
      assert.equal(handles.resolve(handle.slice(0, -1) + (alphabet[alphabet.indexOf(last) | 1] as string)), undefined);
    assert.equal(
      createContextHandles({ maxTokenBytes: MAX_TOKEN_BYTES, now: () => 0 }).resolve(handle),
      undefined,
      'another process, another key',
    );
    assert.equal(
      createContextHandles({ maxTokenBytes: MAX_TOKEN_BYTES, key: Buffer.alloc(32, 1), now: () => 0 }).resolve(handle),
      undefined,
    );
  });

  it('refuses garbage and oversized values before decrypting anything', () => {
    const handles = createContextHandles({ maxTokenBytes: MAX_TOKEN_BYTES, now: () => 0 });
    for (const value of [
      '',
      'bctx_',
      'bctx_forged',
      'token-a',
      `bctx_${'A'.repeat(43)}`,
      `bctx_${'A'.repeat(20_000)}`,
      `bctx_${'!'.repeat(100)}`,
      'x'.repeat(100_000),
    ]) {
      assert.equal(handles.resolve(value), undefined, value.slice(0, 20));
    }
  });

  it('cannot be filled: 160 accounts × 64 tokens each, and a new user still gets a working handle (issue #23)', () => {
    const handles = createContextHandles({ maxTokenBytes: MAX_TOKEN_BYTES, now: () => 0 });
    const first = handles.issue(jws(100), live, ids.mint());
    for (let account = 0; account < 160; account++) {
      for (let token = 0; token < 64; token++) handles.issue(jws(100), live, ids.mint());
    }
    const newcomer = jws(100);
    const request = ids.mint();
    assert.deepEqual(handles.resolve(handles.issue(newcomer, live, request)), {
      subjectToken: newcomer,
      requestId: request,
    });
    assert.ok(handles.resolve(first), "and the first user's handle still opens");
  });

  it('never repeats a nonce under its key', () => {
    const handles = createContextHandles({ maxTokenBytes: MAX_TOKEN_BYTES, now: () => 0 });
    const token = jws(50);
    const request = ids.mint();
    const nonces = new Set<string>();
    for (let i = 0; i < 10_000; i++)
      nonces.add(
        Buffer.from(handles.issue(token, live, request).slice(5), 'base64url')
          .subarray(0, 12)
          .toString('hex'),
      );
    assert.equal(nonces.size, 10_000);
  });

  it('takes only a 16-character request id and a 32-byte key', () => {
    const handles = createContextHandles({ maxTokenBytes: MAX_TOKEN_BYTES, now: () => 0 });
    assert.throws(() => handles.issue(jws(), live, 'short'), TypeError);
    assert.throws(() => createContextHandles({ maxTokenBytes: MAX_TOKEN_BYTES, key: Buffer.alloc(16) }), TypeError);
  });
});

describe('request ids', () => {
  const ids = createRequestIds();

  it('mints 16-character ids that differ each time', () => {
    const minted = new Set(Array.from({ length: 1000 }, () => ids.mint()));
    assert.equal(minted.size, 1000);
    for (const id of minted) assert.match(id, /^[A-Za-z0-9_-]{16}$/);
  });

  it('accepts only a well-formed baton-request value', () => {
    assert.equal(ids.accept('ABCDEFGHijklmn_-'), 'ABCDEFGHijklmn_-');
    assert.equal(ids.accept('short'), undefined);
    assert.equal(ids.accept('ABCDEFGHijklmn\r\n'), undefined);
    assert.equal(ids.accept(['ABCDEFGHijklmn_-', 'ABCDEFGHijklmn_-']), undefined);
    assert.equal(ids.accept(undefined), undefined);
  });
});
