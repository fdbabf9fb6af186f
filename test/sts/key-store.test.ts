import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { SigningKeyUnusableError } from '../../src/sts/key-files.ts';
import { createKeyStore, jwksMaxAgeSeconds, type KeyStore } from '../../src/sts/key-store.ts';
import { createLogger } from '../../src/telemetry/logger.ts';

const logger = createLogger({ name: 'test', level: 'silent' });
const PREPUBLISH = 360;
const RETIRE_AFTER = 330;

const kids = (keys: { jwks(): { keys: { kid?: string }[] } }): string[] =>
  keys
    .jwks()
    .keys.map((k) => k.kid as string)
    .sort();

/** An ES256 store on a clock the test moves, rotating with PREPUBLISH and RETIRE_AFTER; in memory unless given `dir`. */
function rotatingStore(now: () => number, dir?: string): Promise<KeyStore> {
  return createKeyStore({
    ...(dir === undefined ? {} : { dir }),
    alg: 'ES256',
    retireAfterSeconds: RETIRE_AFTER,
    prepublishSeconds: PREPUBLISH,
    logger,
    now,
  });
}

function keysDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'baton-keys-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** An operator-provided PEM file, modified at `atMs`. */
function writeKeyFile(dir: string, name: string, atMs: number): void {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const file = join(dir, name);
  writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
  utimesSync(file, atMs / 1000, atMs / 1000);
}

describe('STS signing keys', () => {
  for (const [alg, kty] of [
    ['ES256', 'EC'],
    ['EdDSA', 'OKP'],
    ['RS256', 'RSA'],
  ] as const) {
    it(`generates ${alg} keys and publishes only their public part`, async () => {
      const keys = await createKeyStore({ alg, retireAfterSeconds: RETIRE_AFTER, logger });
      const [jwk] = keys.jwks().keys;
      assert.equal(jwk?.kty, kty);
      assert.equal(jwk?.alg, alg);
      assert.equal(jwk?.kid, keys.active().kid);
      assert.equal(jwk?.d, undefined);
      keys.close();
    });
  }

  it('publishes the next key at rotate() but keeps signing with the current one', async () => {
    const now = 1_000_000;
    const keys = await rotatingStore(() => now);
    const old = keys.active();
    const standby = await keys.rotate();
    assert.notEqual(standby.kid, old.kid);
    assert.equal(keys.active().kid, old.kid);
    assert.deepEqual(kids(keys), [old.kid, standby.kid].sort());
    assert.equal(keys.jwks().keys.find((k) => k.kid === standby.kid)?.d, undefined);
    keys.close();
  });

  it('signs with the standby once prepublishSeconds have passed', async () => {
    let now = 1_000_000;
    const keys = await rotatingStore(() => now);
    const old = keys.active();
    const standby = await keys.rotate();
    now += PREPUBLISH * 1000 - 1;
    assert.equal(keys.active().kid, old.kid);
    now += 1;
    assert.equal(keys.active().kid, standby.kid);
    keys.close();
  });

  it('keeps the replaced key published until tokenTtl + skew after it stopped signing, not after the rotation', async () => {
    let now = 1_000_000;
    const keys = await rotatingStore(() => now);
    const old = keys.active();
    const standby = await keys.rotate();
    const activation = now + PREPUBLISH * 1000;
    now = activation + RETIRE_AFTER * 1000 - 1;
    assert.equal(keys.active().kid, standby.kid);
    assert.deepEqual(kids(keys), [old.kid, standby.kid].sort());
    now = activation + RETIRE_AFTER * 1000;
    assert.deepEqual(kids(keys), [standby.kid]);
    keys.close();
  });

  it('returns the waiting standby when rotate() is called again before it signs', async () => {
    let now = 1_000_000;
    const keys = await rotatingStore(() => now);
    const [first, concurrent] = await Promise.all([keys.rotate(), keys.rotate()]);
    assert.equal(concurrent.kid, first.kid);
    now += 1000;
    assert.equal((await keys.rotate()).kid, first.kid);
    assert.equal(keys.jwks().keys.length, 2);
    now += PREPUBLISH * 1000;
    const next = await keys.rotate();
    assert.notEqual(next.kid, first.kid);
    assert.equal(keys.active().kid, first.kid);
    keys.close();
  });

  it('signs with a rotated key at once when prepublishSeconds is 0', async () => {
    const keys = await createKeyStore({ alg: 'ES256', retireAfterSeconds: RETIRE_AFTER, prepublishSeconds: 0, logger });
    const fresh = await keys.rotate();
    assert.equal(keys.active().kid, fresh.kid);
    assert.equal(keys.jwks().keys.length, 2);
    keys.close();
  });

  it('tells listeners when a standby is published and when a replaced key retires', async () => {
    let now = 1_000_000;
    const keys = await createKeyStore({
      alg: 'ES256',
      retireAfterSeconds: 60,
      prepublishSeconds: 120,
      logger,
      now: () => now,
    });
    const seen: number[] = [];
    keys.onRotate((jwks) => seen.push(jwks.keys.length));
    await keys.rotate();
    assert.deepEqual(seen, [2]);
    now += 120_000;
    keys.active();
    assert.deepEqual(seen, [2], 'activation changes which key signs, not what is published');
    now += 60_000;
    keys.jwks();
    assert.deepEqual(seen, [2, 1]);
    keys.close();
  });

  it('rotates on rotateEverySeconds, publishing each standby prepublishSeconds before it signs', async (t) => {
    // The schedule's timers and the clock move by hand (mock.timers): no wait on the wall clock.
    t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 1_000_000 });
    const keys = await createKeyStore({
      alg: 'ES256',
      retireAfterSeconds: 60,
      rotateEverySeconds: 120,
      prepublishSeconds: 60,
      logger,
    });
    t.after(() => keys.close());
    const old = keys.active();
    const published = new Promise<number>((resolve) => keys.onRotate((jwks) => resolve(jwks.keys.length)));
    t.mock.timers.tick(59_999);
    assert.equal(keys.jwks().keys.length, 1, 'no standby before rotateEverySeconds - prepublishSeconds');
    t.mock.timers.tick(1);
    // The standby's key pair is generated off the main thread: its publication is awaited, not timed.
    assert.equal(await published, 2);
    assert.equal(keys.active().kid, old.kid, 'published, not signing yet');
    t.mock.timers.tick(59_999);
    assert.equal(keys.active().kid, old.kid);
    t.mock.timers.tick(1);
    assert.notEqual(keys.active().kid, old.kid, 'signing prepublishSeconds after it was published');
    assert.equal(keys.jwks().keys.length, 2, 'the replaced key stays published');
  });

  it('keeps the /jwks max-age a tenth of prepublishSeconds, at most a minute', () => {
    assert.equal(jwksMaxAgeSeconds(360), 36);
    assert.equal(jwksMaxAgeSeconds(3600), 60);
    assert.equal(jwksMaxAgeSeconds(0), 0);
  });
});

describe('STS signing keys in keys.dir', () => {
  it('persists a generated key to keys.dir and signs with it again after a restart', async (t) => {
    const dir = keysDir(t);
    const first = await createKeyStore({ dir, alg: 'ES256', retireAfterSeconds: 60, logger });
    const kid = first.active().kid;
    first.close();
    assert.equal(readdirSync(dir).length, 1);
    const second = await createKeyStore({ dir, alg: 'ES256', retireAfterSeconds: 60, logger });
    assert.equal(second.active().kid, kid);
    second.close();
  });

  it('keeps a persisted standby as the standby across a restart, until its time', async (t) => {
    const dir = keysDir(t);
    let now = Date.now();
    const options = {
      dir,
      alg: 'ES256',
      retireAfterSeconds: RETIRE_AFTER,
      prepublishSeconds: PREPUBLISH,
      logger,
      now: () => now,
    } as const;
    const before = await createKeyStore(options);
    const old = before.active();
    now += 10_000;
    const standby = await before.rotate();
    before.close();
    assert.equal(readdirSync(dir).length, 2);

    const after = await createKeyStore(options);
    t.after(() => after.close());
    assert.equal(after.active().kid, old.kid);
    assert.deepEqual(kids(after), [old.kid, standby.kid].sort());
    now += PREPUBLISH * 1000;
    assert.equal(after.active().kid, standby.kid);
    now += RETIRE_AFTER * 1000;
    assert.deepEqual(kids(after), [standby.kid]);
    assert.equal(readdirSync(dir).length, 1, 'a retired generated key file is removed');
  });

  it('publishes a newly added key file as the standby until prepublishSeconds after its modification time', async (t) => {
    const dir = keysDir(t);
    let now = Date.now();
    writeKeyFile(dir, 'a-2026-01.pem', now - 86_400_000);
    writeKeyFile(dir, 'b-2026-02.pem', now - 1000);
    const keys = await rotatingStore(() => now, dir);
    t.after(() => keys.close());
    const old = keys.active();
    assert.equal(keys.jwks().keys.length, 2);
    now += PREPUBLISH * 1000 - 1000;
    const added = keys.active();
    assert.notEqual(added.kid, old.kid);
  });

  it('signs at once with the oldest file when a fresh directory holds only keys not yet due', async (t) => {
    const dir = keysDir(t);
    let now = Date.now();
    // A mounted Secret gives every file the same time: the name decides which is older.
    writeKeyFile(dir, 'a-2026-01.pem', now);
    writeKeyFile(dir, 'b-2026-02.pem', now);
    const keys = await rotatingStore(() => now, dir);
    t.after(() => keys.close());
    const first = keys.active();
    assert.equal(keys.jwks().keys.length, 2);
    now += PREPUBLISH * 1000;
    assert.notEqual(keys.active().kid, first.kid);
    assert.equal(keys.jwks().keys.length, 2);
  });

  describe('refuses a file in keys.dir it cannot sign with, instead of generating a key of its own', () => {
    const refused = (dir: string) => (error: unknown) =>
      error instanceof SigningKeyUnusableError &&
      error.code === 'BATON_CONFIG_INVALID' &&
      error.reason === 'signing-key' &&
      error.source.startsWith(dir);
    const cases: ReadonlyArray<[string, () => string]> = [
      [
        'a public key mounted where the private key belongs',
        () =>
          generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({
            type: 'spki',
            format: 'pem',
          }) as string,
      ],
      [
        'a private key of an unsupported curve',
        () =>
          generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({
            type: 'pkcs8',
            format: 'pem',
          }) as string,
      ],
      [
        'an RSA key shorter than 2048 bits',
        () =>
          generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({
            type: 'pkcs8',
            format: 'pem',
          }) as string,
      ],
      ['a damaged PEM', () => '-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n'],
      ['a file with no PEM at all', () => 'signing-key: please\n'],
    ];
    for (const [what, contents] of cases) {
      it(what, async (t) => {
        const dir = keysDir(t);
        writeFileSync(join(dir, 'signing.pem'), contents());
        await assert.rejects(createKeyStore({ dir, alg: 'ES256', retireAfterSeconds: 60, logger }), refused(dir));
        assert.deepEqual(readdirSync(dir), ['signing.pem'], 'no key may be generated beside the refused file');
      });
    }

    it('still loads the keys of a mounted Secret, skipping its dot-entries', async (t) => {
      const dir = keysDir(t);
      writeKeyFile(dir, 'tls.key', Date.now() - 3_600_000);
      writeFileSync(join(dir, '..data'), 'not a key');
      const keys = await createKeyStore({ dir, alg: 'ES256', retireAfterSeconds: 60, logger });
      assert.equal(keys.jwks().keys.length, 1);
      keys.close();
    });
  });
});
