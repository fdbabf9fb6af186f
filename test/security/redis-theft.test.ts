/**
 * Issue #14's attack on the Redis tier, with real processes: an app
 * container (or a compromised service) that reaches the shared Redis tries
 * to read another service's exchanged token and replay it at a third
 * service. The mesh is the attack suite's (three real sidecars, a real STS),
 * sharing exchanged tokens through a real redis-server that loads the ACL
 * file `baton redis-acl` wrote.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { type MeshRedisSecrets, type RedisServer, startRedis, writeMeshRedisSecrets } from '../helpers/redis.ts';
import { allOutput, SERVICES, type SecurityMesh, startSecurityMesh } from '../helpers/security-mesh.ts';

describe('stealing exchanged tokens from Redis', { timeout: 90_000 }, () => {
  let mesh: SecurityMesh;
  let redis: RedisServer;
  let secrets: MeshRedisSecrets;
  const clients: Redis[] = [];

  before(async () => {
    secrets = await writeMeshRedisSecrets(SERVICES);
    redis = await startRedis({ aclFile: secrets.aclFile });
    mesh = await startSecurityMesh({ redis: { url: redis.url, secretsDir: secrets.dir } });
  });
  after(async () => {
    for (const client of clients) client.disconnect();
    await mesh?.stop();
    await redis?.stop();
    secrets?.remove();
  });

  /** A Redis connection as some attacker: RESP2, no ready check, errors kept for the assertions. */
  async function connectAs(auth: { username?: string; password?: string }): Promise<Redis> {
    const client = new Redis(redis.url, {
      ...auth,
      protocol: 2,
      enableReadyCheck: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      lazyConnect: true,
    });
    client.on('error', () => {});
    clients.push(client);
    await client.connect();
    return client;
  }

  /** The honest chain's second hop: orders calls payments for alice, which exchanges at the STS and caches in Redis. */
  async function ordersCallsPayments(): Promise<number> {
    const inbound = await request(mesh.inbound('orders', '/orders'), {
      headers: { authorization: `Bearer ${mesh.meshToken('orders', ['gateway'])}` },
    });
    await inbound.body.dump();
    assert.equal(inbound.statusCode, 200);
    const handle = mesh.apps.orders.seen.at(-1)?.headers['baton-context'] as string;
    const r = await request(mesh.outbound('orders', '/charges'), {
      method: 'POST',
      headers: { host: 'payments', 'baton-context': handle },
    });
    await r.body.dump();
    return r.statusCode;
  }

  it('works honestly first: orders reaches payments, and its exchanged token lands in Redis under its own prefix', async () => {
    assert.equal(await ordersCallsPayments(), 200);
    const admin = await connectAs({ username: secrets.admin.username, password: secrets.admin.password });
    assert.ok((await admin.keys('baton:orders:*')).length > 0);
  });

  it('gives an app container, which holds no Redis credentials, nothing: every command is refused', async () => {
    const anonymous = await connectAs({});
    for (const command of [
      ['KEYS', '*'],
      ['SCAN', '0'],
      ['GET', 'baton:orders:x'],
      ['CONFIG', 'GET', 'requirepass'],
      ['MONITOR'],
    ]) {
      await assert.rejects(anonymous.call(command[0] as string, ...command.slice(1)), /NOAUTH/, command.join(' '));
    }
  });

  it("gives a compromised service no way into another service's entries, with its own Redis user", async () => {
    const payments = secrets.sidecar('payments');
    const thief = await connectAs({
      username: payments.username,
      password: readFileSync(payments.passwordFile, 'utf8').trim(),
    });
    const admin = await connectAs({ username: secrets.admin.username, password: secrets.admin.password });
    const [victim] = await admin.keys('baton:orders:*');
    assert.ok(victim);
    await assert.rejects(thief.get(victim), /NOPERM/);
    await assert.rejects(thief.call('KEYS', 'baton:orders:*'), /NOPERM/);
    await assert.rejects(thief.call('SCAN', '0', 'MATCH', 'baton:orders:*'), /NOPERM/);
    await assert.rejects(thief.call('DUMP', victim), /NOPERM/);
    await assert.rejects(thief.call('COPY', victim, 'baton:payments:stolen'), /NOPERM/);
  });

  it('shows even a full-access reader only sealed blobs, and no stolen value is accepted at a third service', async () => {
    const admin = await connectAs({ username: secrets.admin.username, password: secrets.admin.password });
    const names = await admin.keys('*');
    assert.ok(names.length > 0);
    const hitsBefore = mesh.apps.payments.hits;
    for (const name of names) {
      const value = (await admin.get(name)) as string;
      assert.ok(!value.includes('eyJ'), `${name} holds a token`);
      // Replay what was read, whole and in pieces, as a bearer token at payments (and gateway).
      for (const candidate of [value, ...value.split('.')]) {
        for (const target of ['payments', 'gateway'] as const) {
          const r = await request(mesh.inbound(target, target === 'payments' ? '/charges' : '/'), {
            method: 'POST',
            headers: { authorization: `Bearer ${candidate}` },
          });
          await r.body.dump();
          assert.equal(r.statusCode, 401, `${target} refused a value read from ${name}`);
        }
      }
    }
    assert.equal(mesh.apps.payments.hits, hitsBefore, "payments' app saw nothing");
  });

  it("keeps the honest chain working, and no token or Redis password in any process's output", async () => {
    assert.equal(await ordersCallsPayments(), 200);
    const output = allOutput(mesh);
    for (const name of SERVICES)
      assert.ok(
        !output.includes(readFileSync(secrets.sidecar(name).passwordFile, 'utf8').trim()),
        `${name}'s Redis password in a log`,
      );
    assert.ok(!output.includes(readFileSync(secrets.sidecar('orders').sealKeyFile, 'utf8').trim()));
  });
});
