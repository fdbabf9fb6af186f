import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createKeyStore } from '../../src/sts/key-store.ts';
import { createLogger } from '../../src/telemetry/logger.ts';

const logger = createLogger({ name: 'test', level: 'silent' });

describe('STS signing keys', () => {
  for (const [alg, kty] of [['ES256', 'EC'], ['EdDSA', 'OKP'], ['RS256', 'RSA']] as const) {
    it(`generates ${alg} keys and publishes only their public part`, async () => {
      const keys = await createKeyStore({ alg, retireAfterSeconds: 330, logger });
      const [jwk] = keys.jwks().keys;
      assert.equal(jwk?.kty, kty);
      assert.equal(jwk?.alg, alg);
      assert.equal(jwk?.kid, keys.active().kid);
      assert.equal(jwk?.d, undefined);
      keys.close();
    });
  }

  it('keeps the rotated-out key in jwks until its last token has expired', async () => {
    let now = 1_000_000;
    const keys = await createKeyStore({ alg: 'ES256', retireAfterSeconds: 330, logger, now: () => now });
    const old = keys.active();
    const fresh = await keys.rotate();
    assert.notEqual(fresh.kid, old.kid);
    assert.equal(keys.active().kid, fresh.kid);
    assert.deepEqual(keys.jwks().keys.map((k) => k.kid), [fresh.kid, old.kid]);
    now += 329_000;
    assert.equal(keys.jwks().keys.length, 2);
    now += 2_000;
    assert.deepEqual(keys.jwks().keys.map((k) => k.kid), [fresh.kid]);
    keys.close();
  });

  it('tells listeners about a rotation so verifiers pick up the new key', async () => {
    const keys = await createKeyStore({ alg: 'ES256', retireAfterSeconds: 60, logger });
    let seen = 0;
    keys.onRotate((jwks) => (seen = jwks.keys.length));
    await keys.rotate();
    assert.equal(seen, 2);
    keys.close();
  });

  it('persists a generated key to keys.dir and signs with it again after a restart', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-keys-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const first = await createKeyStore({ dir, alg: 'ES256', retireAfterSeconds: 60, logger });
    const kid = first.active().kid;
    first.close();
    assert.equal(readdirSync(dir).length, 1);
    const second = await createKeyStore({ dir, alg: 'ES256', retireAfterSeconds: 60, logger });
    assert.equal(second.active().kid, kid);
    second.close();
  });
});
