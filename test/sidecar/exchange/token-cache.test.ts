import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { TokenType } from '../../../src/core/token-types.ts';
import { createTokenExchanger, type TokenExchanger } from '../../../src/sidecar/exchange/exchanger.ts';
import { createTokenCache, type TokenCache } from '../../../src/sidecar/exchange/token-cache.ts';
import { waitFor } from '../../helpers/net.ts';
import { type RedisServer, startRedis } from '../../helpers/redis.ts';
import { capturingLogger, type StsStandIn, startStsStandIn } from './sts-stand-in.ts';

const SUBJECT = 'eyJhbGciOiJFUzI1NiJ9.subject-token-for-redis-tests.c2ln';
const logs = capturingLogger();

describe('token cache with a Redis tier', () => {
  let redis: RedisServer;
  let sts: StsStandIn;
  let inspector: Redis;
  const closers: Array<() => Promise<void>> = [];

  before(async () => {
    redis = await startRedis();
    sts = await startStsStandIn();
    inspector = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    inspector.on('error', () => {});
    await inspector.connect();
  });
  after(async () => {
    for (const close of closers) await close();
    inspector.disconnect();
    await sts.close();
    await redis.stop();
    for (const line of logs.lines) assert.ok(!line.includes(SUBJECT) && !/"at-\d+"/.test(line), `a token reached the log: ${line}`);
  });

  function cache(prefix: string, encryptionKey?: string): TokenCache {
    const created = createTokenCache({ maxEntries: 100, logger: logs.logger, redis: { url: redis.url, keyPrefix: prefix, commandTimeoutMs: 50, ...(encryptionKey === undefined ? {} : { encryptionKey }) } });
    closers.push(() => created.close());
    return created;
  }

  function exchanger(c: TokenCache): TokenExchanger {
    const created = createTokenExchanger({ tokenEndpoint: sts.tokenEndpoint, clientId: 'orders', clientSecret: 's3cret-s3cret-s3cret', cache: c, logger: logs.logger });
    closers.push(() => created.close());
    return created;
  }

  async function ready(c: TokenCache, prefix: string): Promise<void> {
    // Readiness shows as a round trip: a value written is readable by another client.
    await waitFor(async () => {
      await c.set('probe', { accessToken: 'probe', expiresAt: Math.floor(Date.now() / 1000) + 60, scope: '', issuedTokenType: 'x' });
      return (await inspector.keys(`${prefix}*`)).length > 0;
    }, { what: 'redis tier ready', timeoutMs: 5_000 });
  }

  const exchange = (x: TokenExchanger) => x.exchange({ subjectToken: SUBJECT, subjectTokenType: TokenType.accessToken, audience: 'payments' });

  it('shares exchanged tokens between two sidecar replicas: the second hits Redis, not the STS', async () => {
    const prefix = `t1:${randomBytes(4).toString('hex')}:`;
    const [a, b] = [cache(prefix), cache(prefix)];
    await ready(a, prefix);
    await ready(b, prefix);
    const first = await exchange(exchanger(a));
    const callsAfterFirst = sts.calls();
    const second = await exchange(exchanger(b));
    assert.equal(second.cached, 'hit');
    assert.equal(second.accessToken, first.accessToken);
    assert.equal(sts.calls(), callsAfterFirst);
    const ttl = await inspector.pttl((await inspector.keys(`${prefix}*`)).find((k) => !k.endsWith('probe')) ?? '');
    assert.ok(ttl > 0 && ttl <= 300_000, `expected a TTL bounded by the token lifetime, got ${ttl}`);
  });

  it('seals values with AES-256-GCM when an encryption key is set', async () => {
    const prefix = `t2:${randomBytes(4).toString('hex')}:`;
    const key = randomBytes(32).toString('base64');
    const [a, b, wrong] = [cache(prefix, key), cache(prefix, key), cache(prefix, randomBytes(32).toString('base64'))];
    await ready(a, prefix);
    await ready(b, prefix);
    await ready(wrong, prefix);
    const token = { accessToken: 'at-sealed-value', expiresAt: Math.floor(Date.now() / 1000) + 120, scope: 'x', issuedTokenType: TokenType.accessToken };
    await a.set('k', token);
    for (const name of await inspector.keys(`${prefix}*`)) assert.ok(!(await inspector.get(name))?.includes('at-sealed-value'));
    assert.deepEqual(await b.get('k'), token);
    assert.equal(await wrong.get('k'), undefined);
  });

  it('keeps working without errors when Redis hangs on a live connection, within its command timeout', async () => {
    const prefix = `t4:${randomBytes(4).toString('hex')}:`;
    const c = cache(prefix);
    await ready(c, prefix);
    const x = exchanger(c);
    const first = await exchange(x);
    // A frozen redis-server keeps its connections open: the client stays
    // ready and every command waits for its timeout instead of failing fast.
    redis.process.child.kill('SIGSTOP');
    try {
      const started = Date.now();
      const other = await x.exchange({ subjectToken: SUBJECT + 'hung', subjectTokenType: TokenType.accessToken, audience: 'payments' });
      assert.equal(other.cached, 'miss');
      assert.equal((await exchange(x)).accessToken, first.accessToken);
      assert.ok(Date.now() - started < 1_000, `a hung Redis cost ${Date.now() - started} ms`);
    } finally {
      redis.process.child.kill('SIGCONT');
    }
  });

  it('keeps working without errors when Redis dies mid-test, falling back to the in-process cache', async () => {
    const prefix = `t3:${randomBytes(4).toString('hex')}:`;
    const c = cache(prefix);
    await ready(c, prefix);
    const x = exchanger(c);
    const first = await exchange(x);
    await redis.stop();
    const started = Date.now();
    const again = await exchange(x);
    assert.equal(again.accessToken, first.accessToken);
    const other = await x.exchange({ subjectToken: SUBJECT + '2', subjectTokenType: TokenType.accessToken, audience: 'payments' });
    assert.equal(other.cached, 'miss');
    assert.ok(Date.now() - started < 1_000, 'a dead Redis must not slow the exchange down');
    await waitFor(async () => logs.lines.some((l) => l.includes('redis token cache unavailable')), { what: 'unavailability logged', timeoutMs: 3_000 });
    redis = await redis.restart();
    await waitFor(async () => logs.lines.findLastIndex((l) => l.includes('redis token cache available')) > logs.lines.findLastIndex((l) => l.includes('redis token cache unavailable')), { what: 'recovery logged', timeoutMs: 5_000 });
  });
});
