import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { ConfigError } from '../../../src/config/config-error.ts';
import { loadSealKeys, open, seal, sealKeyFromBytes, type SealKeys } from '../../../src/sidecar/exchange/token-seal.ts';

const keys = (): SealKeys => ({ current: sealKeyFromBytes(randomBytes(32)) });

describe('sealing exchanged tokens for the Redis tier', () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-seal-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('opens what it sealed, under the same associated data, and never shows the plaintext', () => {
    const k = keys();
    const sealed = seal(k, '{"accessToken":"eyJhbGciOi.x.y"}', 'orders\0baton:orders:abc');
    assert.ok(!sealed.includes('eyJ'));
    assert.equal(open(k, sealed, 'orders\0baton:orders:abc'), '{"accessToken":"eyJhbGciOi.x.y"}');
  });

  it('uses a fresh IV for every seal: the same value seals differently each time', () => {
    const k = keys();
    assert.notEqual(seal(k, 'same', 'ad'), seal(k, 'same', 'ad'));
  });

  it('refuses another key, other associated data, and any changed byte', () => {
    const k = keys();
    const sealed = seal(k, 'value', 'orders\0baton:orders:abc');
    assert.equal(open(keys(), sealed, 'orders\0baton:orders:abc'), undefined, 'another service key');
    assert.equal(open(k, sealed, 'payments\0baton:orders:abc'), undefined, 'another service');
    assert.equal(open(k, sealed, 'orders\0baton:orders:abd'), undefined, 'another entry');
    fc.assert(
      fc.property(fc.nat({ max: sealed.length - 1 }), fc.constantFrom(...'ABCxyz019-_.'), (at, c) => {
        const changed = sealed.slice(0, at) + c + sealed.slice(at + 1);
        fc.pre(changed !== sealed);
        // base64url may carry the same bytes in the last character's spare bits; anything that opens must be the original.
        const opened = open(k, changed, 'orders\0baton:orders:abc');
        return opened === undefined || opened === 'value';
      }),
    );
    for (const garbage of ['', 'v1', 'v1....', 'v2.a.b.c.d', 'plain-json', `${sealed}.extra`])
      assert.equal(open(k, garbage, 'x'), undefined);
  });

  it('opens entries sealed by the previous key during a rotation, and seals new ones with the current key', () => {
    const old = sealKeyFromBytes(randomBytes(32));
    const next = sealKeyFromBytes(randomBytes(32));
    const before = seal({ current: old }, 'old entry', 'ad');
    assert.equal(open({ current: next, previous: old }, before, 'ad'), 'old entry');
    assert.equal(open({ current: next }, before, 'ad'), undefined);
    const after = seal({ current: next, previous: old }, 'new entry', 'ad');
    assert.equal(open({ current: old }, after, 'ad'), undefined);
    assert.notEqual(old.kid, next.kid);
  });

  it('loads keys from files as base64 or base64url, with or without a trailing newline', () => {
    const bytes = randomBytes(32);
    writeFileSync(join(dir, 'std'), bytes.toString('base64') + '\n');
    writeFileSync(join(dir, 'url'), bytes.toString('base64url'));
    assert.equal(loadSealKeys(join(dir, 'std')).current.kid, loadSealKeys(join(dir, 'url')).current.kid);
    assert.equal(loadSealKeys(join(dir, 'std'), join(dir, 'url')).previous?.kid, sealKeyFromBytes(bytes).kid);
  });

  it('refuses a missing, short, long or non-base64 key file with a config error that shows no key material', () => {
    const cases: Array<[string, string | undefined]> = [
      ['missing', undefined],
      ['short', randomBytes(16).toString('base64')],
      ['long', randomBytes(48).toString('base64')],
      ['text', 'this is not a key at all, just words'],
      ['empty', ''],
    ];
    for (const [name, content] of cases) {
      const file = join(dir, name);
      if (content !== undefined) writeFileSync(file, content);
      assert.throws(
        () => loadSealKeys(file),
        (error: unknown) =>
          error instanceof ConfigError &&
          error.code === 'BATON_CONFIG_INVALID' &&
          error.key === 'redis.sealKeyFile' &&
          (content === undefined || content === '' || !error.message.includes(content.slice(0, 12))),
        name,
      );
    }
    assert.throws(
      () => loadSealKeys(join(dir, 'std'), join(dir, 'missing')),
      (error: unknown) => error instanceof ConfigError && error.key === 'redis.previousSealKeyFile',
    );
  });
});
