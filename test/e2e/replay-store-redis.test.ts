/**
 * The STS's replay store for single-use jti backed by a real redis-server,
 * as its own ACL user (the in-memory store: test/sts/replay-store.test.ts).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createRedisReplayStore } from '../../src/sts/replay-store.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { startRedis, writeMeshRedisSecrets } from '../helpers/redis.ts';
import { waitFor } from '../helpers/net.ts';

const logger = createLogger({ name: 'test', level: 'silent' });

describe('replay store for single-use jti, shared through Redis', () => {
  it('shares spent ids between replicas through Redis as its own ACL user, and keeps working when Redis goes away', async (t) => {
    const secrets = await writeMeshRedisSecrets(['orders']);
    const redis = await startRedis({ aclFile: secrets.aclFile });
    t.after(async () => {
      await redis.stop();
      secrets.remove();
    });
    const replicaA = createRedisReplayStore({
      Redis,
      commandTimeoutMs: 250,
      url: redis.url,
      credentials: secrets.sts,
      logger,
    });
    const replicaB = createRedisReplayStore({
      Redis,
      commandTimeoutMs: 250,
      url: redis.url,
      credentials: secrets.sts,
      logger,
    });
    t.after(async () => {
      await replicaA.close();
      await replicaB.close();
    });
    const expires = Date.now() + 60_000;
    const connected = (store: typeof replicaA) => async () =>
      /^baton_sts_redis_available 1$/m.test(store.renderMetrics?.() ?? '');
    await waitFor(connected(replicaA), { what: 'replica A connected to redis', timeoutMs: 5_000 });
    await waitFor(connected(replicaB), { what: 'replica B connected to redis', timeoutMs: 5_000 });
    assert.equal(await replicaA.claim('jti-1', expires), true);
    assert.equal(
      await replicaB.claim('jti-1', expires),
      false,
      'the other replica sees it spent: shared through Redis',
    );
    const admin = new Redis(redis.url, {
      username: secrets.admin.username,
      password: secrets.admin.password,
      maxRetriesPerRequest: 0,
    });
    t.after(() => admin.disconnect());
    assert.deepEqual(await admin.keys('*'), ['baton:_sts:jti:jti-1']);
    await redis.process.stop('SIGKILL');
    assert.equal(await replicaA.claim('jti-2', expires), true);
    assert.equal(await replicaA.claim('jti-2', expires), false);
  });

  it('fails closed as an outage does when it cannot authenticate: the replayed id is refused by this replica', async (t) => {
    const secrets = await writeMeshRedisSecrets(['orders']);
    const redis = await startRedis({ aclFile: secrets.aclFile });
    const wrong = join(secrets.dir, 'wrong');
    writeFileSync(wrong, 'not-the-sts-password\n');
    const lines: string[] = [];
    const logged = createLogger({
      name: 'test',
      level: 'info',
      destination: { write: (line: string) => lines.push(line) },
    });
    const store = createRedisReplayStore({
      Redis,
      commandTimeoutMs: 250,
      url: redis.url,
      credentials: { username: secrets.sts.username, passwordFile: wrong },
      logger: logged,
    });
    t.after(async () => {
      await store.close();
      await redis.stop();
      secrets.remove();
    });
    await waitFor(async () => lines.some((l) => l.includes('"fault":"auth"')), {
      what: 'auth failure logged',
      timeoutMs: 5_000,
    });
    const expires = Date.now() + 60_000;
    assert.equal(await store.claim('jti-a', expires), true);
    assert.equal(await store.claim('jti-a', expires), false);
    // Another user's ACL does not reach the STS's keys either: orders may not SET there.
    const orders = createRedisReplayStore({
      Redis,
      commandTimeoutMs: 250,
      url: redis.url,
      credentials: {
        username: secrets.sidecar('orders').username,
        passwordFile: secrets.sidecar('orders').passwordFile,
      },
      logger: logged,
    });
    t.after(() => orders.close());
    // Connected and authenticated as orders: its SET is what the ACL refuses.
    await waitFor(async () => /^baton_sts_redis_available 1$/m.test(orders.renderMetrics?.() ?? ''), {
      what: 'orders connected to redis',
      timeoutMs: 5_000,
    });
    assert.equal(await orders.claim('jti-b', expires), true);
    await waitFor(async () => lines.some((l) => l.includes('"fault":"noperm"')), {
      what: 'noperm logged',
      timeoutMs: 5_000,
    });
    assert.equal(lines.filter((l) => l.includes('"fault":"auth"')).length, 1, 'logged once, not per reconnect');
    assert.match(store.renderMetrics?.() ?? '', /^baton_sts_redis_faults_total\{fault="auth"\} 1$/m, 'counted once');
    assert.match(store.renderMetrics?.() ?? '', /^baton_sts_redis_available 0$/m);
  });
});
