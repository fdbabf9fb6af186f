import assert from 'node:assert/strict';
import { hash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { TokenType } from '../../src/core/token-types.ts';
import { createTokenExchanger, type ExchangeClient } from '../../src/sidecar/exchange/exchanger.ts';
import {
  type CachedToken,
  createTokenCache,
  type RedisTierEvent,
  type TokenCache,
} from '../../src/sidecar/exchange/token-cache.ts';
import { loadSealKeys, type SealKeys } from '../../src/sidecar/exchange/token-seal.ts';
import { waitFor } from '../helpers/net.ts';
import { type MeshRedisSecrets, type RedisServer, startRedis, writeMeshRedisSecrets } from '../helpers/redis.ts';
import { capturingLogger, exchangeConfig, type StsStandIn, startStsStandIn } from '../helpers/sts-stand-in.ts';

const SUBJECT = 'eyJhbGciOiJFUzI1NiJ9.subject-token-for-redis-tests.c2ln';
// Shaped like what the STS mints: a reader of Redis must never find one.
const JWT = `eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.${Buffer.from('{"sub":"alice","aud":"payments"}').toString('base64url')}.c2lnbmF0dXJl`;
const logs = capturingLogger();

const EXPIRES_AT = Math.floor(Date.now() / 1000) + 600;
const token = (accessToken = JWT): CachedToken => ({
  accessToken,
  expiresAt: EXPIRES_AT,
  scope: 'payments:charge',
  issuedTokenType: TokenType.accessToken,
});

describe('token cache with a Redis tier: sealed, one ACL user per service', () => {
  let redis: RedisServer;
  let secrets: MeshRedisSecrets;
  let sts: StsStandIn;
  /** The operator's user: every key, every command — what a thief with full Redis access sees. */
  let admin: Redis;
  const closers: Array<() => Promise<void>> = [];

  before(async () => {
    secrets = await writeMeshRedisSecrets(['orders', 'payments']);
    redis = await startRedis({ aclFile: secrets.aclFile });
    sts = await startStsStandIn();
    admin = await connect({ username: secrets.admin.username, password: secrets.admin.password });
  });
  after(async () => {
    for (const close of closers) await close();
    admin.disconnect();
    await sts.close();
    await redis.stop();
    secrets.remove();
    for (const line of logs.lines)
      assert.ok(
        !line.includes(SUBJECT) && !line.includes(JWT) && !/"at-\d+"/.test(line),
        `a token reached the log: ${line}`,
      );
  });

  async function connect(auth: { username?: string; password?: string }): Promise<Redis> {
    const client = new Redis(redis.url, {
      ...auth,
      protocol: 2,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      enableReadyCheck: false,
      retryStrategy: () => null,
    });
    client.on('error', () => {});
    closers.push(async () => client.disconnect());
    await client.connect();
    return client;
  }

  interface CacheSetup {
    readonly service?: string;
    readonly username?: string;
    readonly passwordFile?: string;
    readonly sealKeys?: SealKeys;
    readonly events?: RedisTierEvent[];
    /** Wait until the tier is connected (default); false for a tier expected to be refused. */
    readonly connected?: boolean;
  }

  async function cache(setup: CacheSetup = {}): Promise<TokenCache> {
    const service = setup.service ?? 'orders';
    const files = secrets.sidecar(service);
    const events = setup.events ?? [];
    const created = createTokenCache({
      maxEntries: 100,
      logger: logs.logger,
      onRedisEvent: (event: RedisTierEvent) => events.push(event),
      redis: {
        Redis,
        url: redis.url,
        service,
        credentials: {
          username: setup.username ?? files.username,
          passwordFile: setup.passwordFile ?? files.passwordFile,
        },
        sealKeys: setup.sealKeys ?? loadSealKeys(files.sealKeyFile),
        commandTimeoutMs: 50,
      },
    });
    closers.push(() => created.close());
    if (setup.connected !== false)
      await waitFor(async () => events.includes('available'), { what: 'redis tier connected', timeoutMs: 5_000 });
    return created;
  }

  function exchanger(c: TokenCache): ExchangeClient {
    const created = createTokenExchanger({
      tokenEndpoint: sts.tokenEndpoint,
      clientId: 'orders',
      clientSecret: 's3cret-s3cret-s3cret',
      authMethod: 'client_secret_basic',
      config: exchangeConfig(),
      cache: c,
      logger: logs.logger,
    });
    closers.push(() => created.close());
    return created;
  }

  const exchange = (x: ExchangeClient, subject = SUBJECT) =>
    x.exchange({ subjectToken: subject, subjectTokenType: TokenType.accessToken, audience: 'payments' });

  it('shares exchanged tokens between two replicas of a service: the second hits Redis, not the STS', async () => {
    const [a, b] = [await cache(), await cache()];
    const subject = `${SUBJECT}-${randomBytes(4).toString('hex')}`;
    const first = await exchange(exchanger(a), subject);
    const callsAfterFirst = sts.calls();
    const second = await exchange(exchanger(b), subject);
    assert.equal(second.cached, 'hit');
    assert.equal(second.accessToken, first.accessToken);
    assert.equal(sts.calls(), callsAfterFirst);
    for (const name of await admin.keys('baton:orders:*')) {
      const ttl = await admin.pttl(name);
      assert.ok(ttl > 0 && ttl <= 300_000, `expected a TTL bounded by the token lifetime, got ${ttl}`);
    }
  });

  it('shows a reader with full Redis access only sealed blobs, never a token', async () => {
    const c = await cache();
    await c.set(`k-${randomBytes(4).toString('hex')}`, token());
    await exchange(exchanger(c), `${SUBJECT}-reader`);
    const names = await admin.keys('*');
    assert.ok(names.length >= 2);
    for (const name of names) {
      const value = (await admin.get(name)) ?? '';
      assert.match(value, /^v1\.[\w-]{8}\.[\w-]+\.[\w-]+\.[\w-]+$/, `${name} holds a sealed blob`);
      assert.ok(!value.includes('eyJ') && !value.includes('at-') && !value.includes('alice'), `${name} leaks a token`);
      assert.ok(!name.includes('eyJ'), 'no token in a key name either');
    }
  });

  it("refuses another service's ACL user on this service's keys, and the unauthenticated user everywhere", async () => {
    await (await cache()).set(`victim-${randomBytes(4).toString('hex')}`, token());
    const [orderKey] = await admin.keys('baton:orders:*');
    assert.ok(orderKey);
    const payments = secrets.sidecar('payments');
    const other = await connect({
      username: payments.username,
      password: readFileSync(payments.passwordFile, 'utf8').trim(),
    });
    await assert.rejects(other.get(orderKey), /^ReplyError: NOPERM/);
    await assert.rejects(other.set(orderKey, 'forged'), /^ReplyError: NOPERM/);
    await assert.rejects(other.call('KEYS', '*'), /^ReplyError: NOPERM/);
    await assert.rejects(other.call('SCAN', '0'), /^ReplyError: NOPERM/);
    await assert.rejects(other.call('DEL', orderKey), /^ReplyError: NOPERM/);
    assert.equal(await other.set('baton:payments:own', 'x', 'PX', 1000), 'OK', 'its own prefix stays writable');
    const anonymous = await connect({});
    await assert.rejects(anonymous.get(orderKey), /^ReplyError: NOAUTH/);
    const errors: string[] = [];
    const guesser = new Redis(redis.url, {
      username: payments.username,
      password: 'wrong-password',
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    guesser.on('error', (error: Error) => errors.push(error.message));
    await assert.rejects(guesser.connect());
    guesser.disconnect();
    assert.match(errors.join('\n'), /WRONGPASS/);
  });

  it("does not open a blob moved under another key or into another service's prefix, even with a shared seal key", async () => {
    // Worst case for the binding: both services were given the same seal key by mistake.
    const shared = loadSealKeys(secrets.sidecar('orders').sealKeyFile);
    const events: RedisTierEvent[] = [];
    const orders = await cache({ sealKeys: shared });
    const payments = await cache({ service: 'payments', sealKeys: shared, events });
    const key = `moved-${randomBytes(4).toString('hex')}`;
    await orders.set(key, token());
    assert.deepEqual(await (await cache({ sealKeys: shared })).get(key), token(), 'it opens where it was written');
    const blobs = new Map<string, string>();
    for (const name of await admin.keys('baton:orders:*')) blobs.set(name, (await admin.get(name)) as string);
    // Copy every orders blob to the name payments would read `key` under.
    const target = `baton:payments:${hash('sha256', key, 'base64url')}`;
    for (const blob of blobs.values()) {
      await admin.set(target, blob, 'PX', 60_000);
      assert.equal(await payments.get(key), undefined, 'a moved blob is a miss');
    }
    assert.ok(events.filter((e) => e === 'unsealable').length >= blobs.size, 'each failed open is counted');
    // Within one prefix too: a blob under another entry's name does not open.
    const other = `other-${randomBytes(4).toString('hex')}`;
    await admin.set(
      `baton:orders:${hash('sha256', other, 'base64url')}`,
      [...blobs.values()][0] as string,
      'PX',
      60_000,
    );
    assert.equal(await (await cache({ sealKeys: shared })).get(other), undefined);
  });

  it('rotates seal keys: the previous key still opens old entries, a sidecar without it misses', async () => {
    const oldFile = secrets.sidecar('orders').sealKeyFile;
    const newFile = join(secrets.dir, 'orders-new-seal-key');
    writeFileSync(newFile, randomBytes(32).toString('base64'));
    const before = await cache({ sealKeys: loadSealKeys(oldFile) });
    const key = `rotated-${randomBytes(4).toString('hex')}`;
    await before.set(key, token());
    const rotated = await cache({ sealKeys: loadSealKeys(newFile, oldFile) });
    const withoutPrevious = await cache({ sealKeys: loadSealKeys(newFile) });
    assert.deepEqual(await rotated.get(key), token());
    assert.equal(await withoutPrevious.get(key), undefined);
    // New entries are sealed with the new key only.
    const fresh = `fresh-${randomBytes(4).toString('hex')}`;
    await rotated.set(fresh, token());
    assert.equal(await (await cache({ sealKeys: loadSealKeys(oldFile) })).get(fresh), undefined);
    assert.deepEqual(await (await cache({ sealKeys: loadSealKeys(newFile) })).get(fresh), token());
  });

  it('falls back to the in-process cache on a wrong password: no errors, logged and counted once', async () => {
    const wrong = join(secrets.dir, 'wrong-password');
    writeFileSync(wrong, 'not-the-password\n');
    const events: RedisTierEvent[] = [];
    const c = await cache({ passwordFile: wrong, events, connected: false });
    const x = exchanger(c);
    await waitFor(async () => events.includes('auth'), { what: 'auth failure reported', timeoutMs: 5_000 });
    const started = Date.now();
    for (let i = 0; i < 20; i++)
      assert.equal((await exchange(x, `${SUBJECT}-wrongpass`)).accessToken.startsWith('at-'), true);
    assert.ok(Date.now() - started < 1_000, `a refused Redis cost ${Date.now() - started} ms`);
    // Reconnects keep being refused; the state changed once. A deliberate wait, not a gate: it spans
    // several reconnect attempts (200 ms, then 400 ms) to show that none of them is reported again.
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.deepEqual(events, ['auth']);
    assert.equal(logs.lines.filter((l) => l.includes('"fault":"auth"')).length, 1);
  });

  it('picks up a rotated password file at the next reconnect, without a restart', async () => {
    const file = join(secrets.dir, 'rotating-password');
    writeFileSync(file, 'stale-password\n');
    const events: RedisTierEvent[] = [];
    const c = await cache({ passwordFile: file, events, connected: false });
    await waitFor(async () => events.includes('auth'), { what: 'auth failure reported', timeoutMs: 5_000 });
    writeFileSync(file, readFileSync(secrets.sidecar('orders').passwordFile));
    await waitFor(async () => events.at(-1) === 'available', {
      what: 'reconnected with the new password',
      timeoutMs: 5_000,
    });
    const key = `after-rotation-${randomBytes(4).toString('hex')}`;
    await c.set(key, token());
    assert.deepEqual(await (await cache()).get(key), token());
  });

  it('falls back when the ACL refuses a command (NOPERM), and stops sending until the back-off ends', async () => {
    // A sidecar configured as orders but authenticating as payments: every key it uses is outside that user's prefix.
    const payments = secrets.sidecar('payments');
    const events: RedisTierEvent[] = [];
    const c = await cache({ username: payments.username, passwordFile: payments.passwordFile, events });
    await waitFor(
      async () => {
        await c.set('probe', token('probe'));
        return events.includes('noperm');
      },
      { what: 'noperm reported', timeoutMs: 5_000 },
    );
    const x = exchanger(c);
    const before = await commandCount('get');
    for (let i = 0; i < 20; i++) await exchange(x, `${SUBJECT}-noperm-${i % 2}`);
    assert.equal(await commandCount('get'), before, 'no GET reached Redis during the back-off');
    assert.deepEqual(events, ['available', 'noperm']);
    assert.equal(logs.lines.filter((l) => l.includes('"fault":"noperm"')).length, 1);
  });

  async function commandCount(command: string): Promise<number> {
    const info = (await admin.call('INFO', 'commandstats')) as string;
    const line = info.split('\n').find((l) => l.startsWith(`cmdstat_${command}:`));
    return line === undefined
      ? 0
      : Number(/calls=(\d+)/.exec(line)?.[1] ?? 0) + Number(/rejected_calls=(\d+)/.exec(line)?.[1] ?? 0);
  }

  it('keeps working without errors when Redis hangs on a live connection, within its command timeout', async () => {
    const c = await cache();
    const x = exchanger(c);
    const first = await exchange(x, `${SUBJECT}-hang`);
    // A frozen redis-server keeps its connections open: the client stays
    // ready and every command waits for its timeout instead of failing fast.
    redis.process.child.kill('SIGSTOP');
    try {
      const started = Date.now();
      const other = await exchange(x, `${SUBJECT}-hung`);
      assert.equal(other.cached, 'miss');
      assert.equal((await exchange(x, `${SUBJECT}-hang`)).accessToken, first.accessToken);
      assert.ok(Date.now() - started < 1_000, `a hung Redis cost ${Date.now() - started} ms`);
    } finally {
      redis.process.child.kill('SIGCONT');
    }
  });

  it('keeps working without errors when Redis dies mid-test, falling back to the in-process cache', async () => {
    const events: RedisTierEvent[] = [];
    const c = await cache({ events });
    const x = exchanger(c);
    const first = await exchange(x, `${SUBJECT}-dies`);
    admin.disconnect();
    await redis.stop();
    const started = Date.now();
    const again = await exchange(x, `${SUBJECT}-dies`);
    assert.equal(again.accessToken, first.accessToken);
    const other = await exchange(x, `${SUBJECT}-dies-2`);
    assert.equal(other.cached, 'miss');
    assert.ok(Date.now() - started < 1_000, 'a dead Redis must not slow the exchange down');
    await waitFor(async () => events.includes('unavailable'), { what: 'unavailability reported', timeoutMs: 3_000 });
    redis = await redis.restart();
    await waitFor(async () => events.at(-1) === 'available', { what: 'recovery reported', timeoutMs: 5_000 });
    assert.deepEqual(
      events.filter((e) => e !== 'unsealable'),
      ['available', 'unavailable', 'available'],
    );
  });
});
