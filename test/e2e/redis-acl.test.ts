import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { stringify } from 'yaml';
import { ConfigError } from '../../src/config/config-error.ts';
import { loadConfig } from '../../src/config/load.ts';
import { SidecarConfigSchema } from '../../src/sidecar/config.ts';
import { StsConfigSchema } from '../../src/sts/config.ts';
import { runBaton } from '../helpers/process.ts';
import { startRedis } from '../helpers/redis.ts';

describe('baton redis-acl', () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-redis-acl-cli-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('writes an ACL file redis-server loads, with one user per service, the STS and an operator, and the default user off', async (t) => {
    const out = join(dir, 'mesh');
    const run = await runBaton(['redis-acl', '--services', 'gateway,orders', '--dir', out]);
    assert.equal(run.code, 0, run.stderr);
    const acl = readFileSync(join(out, 'users.acl'), 'utf8');
    assert.deepEqual(
      acl
        .trim()
        .split('\n')
        .map((l) => l.split(' ').slice(0, 2).join(' ')),
      ['user default', 'user sidecar-gateway', 'user sidecar-orders', 'user baton-sts', 'user baton-admin'],
    );
    assert.match(acl, /^user default off /m);
    assert.match(
      acl,
      /^user sidecar-orders on resetpass #[0-9a-f]{64} resetkeys ~baton:orders:\* resetchannels -@all \+get \+set$/m,
    );
    assert.match(
      acl,
      /^user baton-sts on resetpass #[0-9a-f]{64} resetkeys ~baton:_sts:\* resetchannels -@all \+set$/m,
    );
    const ordersPassword = readFileSync(join(out, 'sidecar-orders', 'password'), 'utf8').trim();
    assert.ok(!acl.includes(ordersPassword), 'only hashes in the ACL file');
    assert.equal(statSync(join(out, 'sidecar-orders', 'password')).mode & 0o777, 0o600);
    assert.equal(statSync(join(out, 'sidecar-orders', 'seal-key')).mode & 0o777, 0o600);
    assert.equal(statSync(join(out, 'sidecar-orders')).mode & 0o777, 0o700);
    assert.equal(
      Buffer.from(readFileSync(join(out, 'sidecar-orders', 'seal-key'), 'utf8').trim(), 'base64').length,
      32,
    );

    const redis = await startRedis({ aclFile: join(out, 'users.acl') });
    t.after(() => redis.stop());
    const orders = new Redis(redis.url, {
      username: 'sidecar-orders',
      password: ordersPassword,
      maxRetriesPerRequest: 0,
      enableReadyCheck: false,
    });
    t.after(() => orders.disconnect());
    assert.equal(await orders.set('baton:orders:x', 'v'), 'OK');
    await assert.rejects(orders.set('baton:gateway:x', 'v'), /NOPERM/);
    await assert.rejects(orders.call('CONFIG', 'GET', '*'), /NOPERM/);
    await assert.rejects(orders.call('FLUSHALL'), /NOPERM/);
  });

  it('keeps existing secrets when run again, so adding a service rotates nothing', async () => {
    const out = join(dir, 'again');
    assert.equal((await runBaton(['redis-acl', '--services', 'orders', '--dir', out])).code, 0);
    const before = readFileSync(join(out, 'sidecar-orders', 'password'), 'utf8');
    const seal = readFileSync(join(out, 'sidecar-orders', 'seal-key'), 'utf8');
    assert.equal((await runBaton(['redis-acl', '--services', 'orders,payments', '--dir', out])).code, 0);
    assert.equal(readFileSync(join(out, 'sidecar-orders', 'password'), 'utf8'), before);
    assert.equal(readFileSync(join(out, 'sidecar-orders', 'seal-key'), 'utf8'), seal);
    assert.match(readFileSync(join(out, 'users.acl'), 'utf8'), /^user sidecar-payments /m);
  });

  it('refuses service names that are not DNS labels, and missing flags, with exit status 2', async () => {
    for (const args of [
      ['--services', 'Orders', '--dir', dir],
      ['--services', 'a:b', '--dir', dir],
      ['--dir', dir],
      ['--services', 'a'],
    ]) {
      const run = await runBaton(['redis-acl', ...args]);
      assert.equal(run.code, 2, args.join(' '));
    }
  });
});

describe('redis settings of the sidecar and the STS', () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-redis-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  // The Redis tier serves plaintext mode only: in mtls mode exchanged tokens are bound to the pod and never shared.
  const sidecar = {
    service: 'orders',
    transport: { mode: 'plaintext' },
    sts: { issuer: 'http://127.0.0.1:1', clientId: 'orders', clientSecret: 'x' },
    policy: { file: '/dev/null' },
  };

  const configError = (key: string, reason?: string) => (error: unknown) =>
    error instanceof ConfigError &&
    error.code === 'BATON_CONFIG_INVALID' &&
    error.reason === reason &&
    error.key === key;

  it('refuses a sidecar with Redis and no seal key: tokens are never stored unsealed', () => {
    assert.throws(
      () =>
        loadConfig(SidecarConfigSchema, {
          env: { BATON_SERVICE: 'orders' },
          overrides: { ...flat(sidecar), 'redis.url': 'redis://r:6379', 'redis.passwordFile': '/p' },
        }),
      configError('redis.sealKeyFile', 'missing-key'),
    );
  });

  it('refuses a Redis URL that carries credentials, and a Redis given as a bare URL', () => {
    assert.throws(
      () =>
        loadConfig(SidecarConfigSchema, {
          overrides: {
            ...flat(sidecar),
            'redis.url': 'redis://orders:hunter2@r:6379',
            'redis.passwordFile': '/p',
            'redis.sealKeyFile': '/k',
          },
        }),
      configError('redis.url'),
    );
    assert.throws(
      () => loadConfig(SidecarConfigSchema, { env: { BATON_REDIS: 'redis://r:6379' }, overrides: flat(sidecar) }),
      configError('redis'),
    );
    assert.throws(
      () =>
        loadConfig(StsConfigSchema, {
          overrides: { issuer: 'http://sts', 'policy.file': '/p', 'redis.url': 'redis://r:6379' },
        }),
      configError('redis.passwordFile', 'missing-key'),
    );
  });

  it('reads every redis key from the environment, with defaults', () => {
    const config = loadConfig(SidecarConfigSchema, {
      env: {
        BATON_REDIS__URL: 'rediss://r:6380',
        BATON_REDIS__PASSWORD_FILE: '/etc/baton/redis/password',
        BATON_REDIS__SEAL_KEY_FILE: '/etc/baton/redis/seal-key',
      },
      overrides: flat(sidecar),
    });
    assert.deepEqual(config.redis, {
      url: 'rediss://r:6380',
      passwordFile: '/etc/baton/redis/password',
      sealKeyFile: '/etc/baton/redis/seal-key',
      commandTimeoutMs: 50,
    });
    const sts = loadConfig(StsConfigSchema, {
      overrides: {
        issuer: 'http://sts',
        'policy.file': '/p',
        'redis.url': 'redis://r:6379',
        'redis.passwordFile': '/p',
      },
    });
    assert.deepEqual(sts.redis, {
      url: 'redis://r:6379',
      username: 'baton-sts',
      passwordFile: '/p',
      commandTimeoutMs: 250,
    });
  });

  it('a sidecar process with an unreadable seal key exits 78 naming the key, before it listens', async () => {
    const file = join(dir, 'sidecar.yaml');
    writeFileSync(join(dir, 'password'), 'pw\n');
    writeFileSync(join(dir, 'short-key'), 'c2hvcnQ=');
    writeFileSync(
      join(dir, 'policy.yaml'),
      'apiVersion: baton.dev/v1alpha1\nkind: CallGraph\nmetadata: { name: t }\nspec:\n  services:\n    orders: { entrypoint: true }\n',
    );
    writeFileSync(
      file,
      stringify({
        ...sidecar,
        policy: { file: join(dir, 'policy.yaml') },
        inbound: { port: 0 },
        outbound: { port: 0 },
        admin: { port: 0 },
        redis: { url: 'redis://127.0.0.1:1', passwordFile: join(dir, 'password'), sealKeyFile: join(dir, 'short-key') },
      }),
    );
    const run = await runBaton(['sidecar', '--config', file]);
    assert.equal(run.code, 78, run.stderr);
    assert.match(run.stderr, /redis\.sealKeyFile/);
    assert.ok(!run.stdout.includes('sidecar listening'));
  });
});

function flat(value: Record<string, unknown>, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    if (typeof child === 'object' && child !== null && !Array.isArray(child))
      Object.assign(out, flat(child as Record<string, unknown>, `${prefix}${key}.`));
    else out[`${prefix}${key}`] = child;
  }
  return out;
}
