/**
 * The sidecar as users run it: real `baton sts` and `baton sidecar`
 * processes, a real redis-server, loopback apps and a loopback IdP; the
 * sidecars reach the STS token endpoint through a counting relay so the
 * tests can see every exchange.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { request } from 'undici';
import { stringify } from 'yaml';
import { closeServer, listen } from '../helpers/http-server.ts';
import { freePort, waitFor } from '../helpers/net.ts';
import { callGraph } from '../helpers/policy.ts';
import { logLinesOut, type RunningProcess, startBaton } from '../helpers/process.ts';
import { Redis } from 'ioredis';
import { type MeshRedisSecrets, type RedisServer, startRedis, writeMeshRedisSecrets } from '../helpers/redis.ts';
import { PolicyDeniedError } from '../../src/policy/language/errors.ts';

const SERVICES = ['gateway', 'orders', 'payments'] as const;
type Name = (typeof SERVICES)[number];

const policyYaml = (extra = '') =>
  callGraph(
    `
gateway: { entrypoint: true }
orders:
  accepts:
    - { name: from-gateway, from: gateway, methods: [GET, POST], paths: ["/orders", "/orders/**"], scopes: "shop" }
payments:
  accepts:
    - { name: charge, from: orders, origins: [gateway], methods: [POST], paths: ["/charges"], scopes: "shop" }
${extra}`,
    { name: 'e2e', maxDepth: 4 },
  );

const CHUNK = Buffer.alloc(64 * 1024, 0x61);

function* generateChunks(total: number): Generator<Buffer> {
  for (let sent = 0; sent < total; sent += CHUNK.length)
    yield total - sent >= CHUNK.length ? CHUNK : CHUNK.subarray(0, total - sent);
}

async function writeChunks(res: ServerResponse, total: number): Promise<void> {
  for (const chunk of generateChunks(total)) {
    if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve));
  }
}

/** The kernel's high-water mark of a process's resident memory (VmHWM). */
function peakRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
}

describe('baton sidecar end to end', { timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-e2e-sidecar-'));
  const servers: Server[] = [];
  const sidecars = {} as Record<Name, { process: RunningProcess; inbound: number; outbound: number; admin: number }>;
  let sts: RunningProcess;
  let redis: RedisServer;
  let redisSecrets: MeshRedisSecrets;
  const configs = {} as Record<Name, Record<string, unknown>>;
  let idpUrl: string;
  let signUserToken: (sub: string, scope: string) => Promise<string>;
  let tokenCalls = 0;
  // Requests the gateway app is holding at /slow.
  let slowArrived = 0;
  const policyFile = join(dir, 'callgraph.yaml');

  before(async () => {
    // An external IdP: an ES256 key and its JWK Set on loopback.
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'idp-1', alg: 'ES256', use: 'sig' };
    const idp = await listen((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    servers.push(idp.server);
    idpUrl = idp.url;
    signUserToken = (sub, scope) =>
      new SignJWT({ scope, client_id: 'shop-web', jti: randomUUID() })
        .setProtectedHeader({ alg: 'ES256', kid: 'idp-1', typ: 'at+jwt' })
        .setIssuer(idpUrl)
        .setSubject(sub)
        .setAudience('gateway')
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(privateKey);

    writeFileSync(policyFile, policyYaml());
    // Redis as deployed: an ACL file from `baton redis-acl`, one user and one seal key per service.
    redisSecrets = await writeMeshRedisSecrets(SERVICES);
    redis = await startRedis({ aclFile: redisSecrets.aclFile });
    const secrets = Object.fromEntries(SERVICES.map((n) => [n, `secret-${n}-${randomUUID()}`])) as Record<Name, string>;
    const stsPort = await freePort();
    const stsUrl = `http://127.0.0.1:${stsPort}`;
    writeFileSync(
      join(dir, 'sts.yaml'),
      stringify({
        issuer: stsUrl,
        port: stsPort,
        policy: { file: policyFile },
        transport: { mode: 'plaintext' },
        clients: SERVICES.map((id) => ({ id, secret: secrets[id] })),
        externalIssuers: [{ issuer: idpUrl, jwksUri: `${idpUrl}/jwks`, audience: 'gateway' }],
      }),
    );
    sts = startBaton(['sts', '--config', join(dir, 'sts.yaml')]);
    await sts.waitForOutput(/"msg":"sts listening"/, 20_000);

    // Counts token requests on their way to the STS.
    const relay = await listen((req, res) => {
      if (req.method === 'POST') tokenCalls++;
      void request(`${stsUrl}${req.url}`, { method: req.method as 'POST', headers: req.headers, body: req }).then(
        (r) => {
          res.writeHead(r.statusCode, r.headers as Record<string, string>);
          r.body.pipe(res);
        },
        () => {
          res.writeHead(502);
          res.end();
        },
      );
    });
    servers.push(relay.server);

    const ports = {} as Record<Name, { app: number; inbound: number; outbound: number; admin: number }>;
    for (const name of SERVICES)
      ports[name] = { app: 0, inbound: await freePort(), outbound: await freePort(), admin: await freePort() };
    // Apps: gateway → orders → payments, each through its own sidecar's outbound port with its handle.
    const relayApp =
      (self: Name, next: { service: Name; path: string }) => async (req: IncomingMessage, res: ServerResponse) => {
        if (req.url === '/slow') {
          slowArrived++;
          req.resume();
          // A slow app: the requests are still in flight when the signal arrives.
          await new Promise((r) => setTimeout(r, 400));
          res.end('slow done');
          return;
        }
        if (self === 'orders' && req.url === '/orders/bulk') {
          // Counts a streamed upload, then streams a download of the same size back.
          let received = 0;
          for await (const chunk of req) received += (chunk as Buffer).length;
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-received': String(received) });
          await writeChunks(res, received);
          res.end();
          return;
        }
        const path = req.url === '/direct' ? '/charges' : req.url === '/orders/bulk' ? '/orders/bulk' : next.path;
        const response = await request(`http://127.0.0.1:${ports[self].outbound}${path}`, {
          method: 'POST',
          headers: {
            host: req.url === '/direct' ? 'payments' : next.service,
            'baton-context': String(req.headers['baton-context']),
          },
          body: req,
        });
        res.writeHead(response.statusCode, {
          'content-type': String(response.headers['content-type'] ?? 'text/plain'),
          ...(response.headers['x-received'] === undefined
            ? {}
            : { 'x-received': String(response.headers['x-received']) }),
        });
        response.body.pipe(res);
      };
    const apps: Record<Name, (req: IncomingMessage, res: ServerResponse) => void> = {
      gateway: (req, res) => void relayApp('gateway', { service: 'orders', path: '/orders' })(req, res),
      orders: (req, res) => void relayApp('orders', { service: 'payments', path: '/charges' })(req, res),
      payments: (req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            subject: req.headers['baton-subject'],
            caller: req.headers['baton-caller'],
            chain: req.headers['baton-chain'],
            txn: req.headers['baton-txn'],
            sawToken: req.headers.authorization !== undefined,
          }),
        );
      },
    };
    for (const name of SERVICES) {
      const app = await listen(apps[name]);
      servers.push(app.server);
      ports[name].app = app.port;
      const config = {
        service: name,
        inbound: { port: ports[name].inbound, app: app.url },
        outbound: { port: ports[name].outbound },
        admin: { port: ports[name].admin },
        sts: { issuer: stsUrl, clientId: name, clientSecret: secrets[name], tokenEndpoint: `${relay.url}/token` },
        transport: { mode: 'plaintext' },
        policy: { file: policyFile },
        upstreams: {
          orders: `http://127.0.0.1:${ports.orders.inbound}`,
          payments: `http://127.0.0.1:${ports.payments.inbound}`,
        },
        redis: {
          url: redis.url,
          passwordFile: redisSecrets.sidecar(name).passwordFile,
          sealKeyFile: redisSecrets.sidecar(name).sealKeyFile,
        },
        shutdown: { graceMs: 5_000 },
        ...(name === 'gateway' ? { externalIssuers: [{ issuer: idpUrl, jwksUri: `${idpUrl}/jwks` }] } : {}),
      };
      configs[name] = config;
      writeFileSync(join(dir, `${name}.yaml`), stringify(config), { mode: 0o600 });
      const process = startBaton(['sidecar', '--config', join(dir, `${name}.yaml`)]);
      sidecars[name] = { process, ...ports[name] };
    }
    for (const name of SERVICES) {
      await sidecars[name].process.waitForOutput(/"msg":"sidecar listening"/, 20_000);
      await waitFor(
        async () => {
          const r = await request(`http://127.0.0.1:${sidecars[name].admin}/readyz`);
          await r.body.dump();
          return r.statusCode === 200;
        },
        { what: `${name} sidecar ready`, timeoutMs: 20_000 },
      );
    }
  });

  after(async () => {
    for (const name of SERVICES) await sidecars[name]?.process.stop('SIGKILL');
    await sts?.stop('SIGKILL');
    await redis?.stop();
    redisSecrets?.remove();
    for (const server of servers) await closeServer(server);
    rmSync(dir, { recursive: true, force: true });
  });

  async function checkout(token: string, path = '/orders', headers: Record<string, string> = {}) {
    const r = await request(`http://127.0.0.1:${sidecars.gateway.inbound}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, ...headers },
    });
    const text = await r.body.text();
    return { status: r.statusCode, text };
  }

  it('delivers the nested act chain to payments, and no spoofed baton-* header reaches an app', async () => {
    const token = await signUserToken('alice', 'shop');
    const r = await checkout(token, '/orders', {
      'Baton-Subject': 'mallory',
      'BATON-CHAIN': 'root',
      baton_caller: 'root',
    });
    assert.equal(r.status, 200, r.text);
    const seen = JSON.parse(r.text) as Record<string, unknown>;
    assert.equal(seen.subject, 'alice');
    assert.equal(seen.caller, 'orders');
    assert.equal(seen.chain, 'gateway,orders');
    assert.equal(typeof seen.txn, 'string');
    assert.equal(seen.sawToken, false);
  });

  it("shares exchanged tokens between replicas through Redis, sealed and under each service's own ACL user", async () => {
    const token = await signUserToken('grace', 'shop');
    assert.equal((await checkout(token)).status, 200);
    const admin = new Redis(redis.url, {
      username: redisSecrets.admin.username,
      password: redisSecrets.admin.password,
      maxRetriesPerRequest: 0,
    });
    try {
      const names = await admin.keys('*');
      for (const service of ['gateway', 'orders'])
        assert.ok(
          names.some((n) => n.startsWith(`baton:${service}:`)),
          `${service} wrote under its own prefix`,
        );
      for (const name of names) {
        const value = (await admin.get(name)) ?? '';
        assert.match(value, /^v1\./, `${name} is sealed`);
        // A JWT's header and payload both open with `eyJ` (base64url of `{"`): ciphertext can hold `eyJ` by chance, not that shape.
        assert.doesNotMatch(value, /eyJ[\w-]*\.eyJ/, `${name} holds no token`);
      }
    } finally {
      admin.disconnect();
    }
    // A second gateway replica, same identity and seal key, cold in-process cache: its exchange comes from Redis.
    const replicaPorts = { inbound: await freePort(), outbound: await freePort(), admin: await freePort() };
    const replicaConfig = {
      ...configs.gateway,
      inbound: { ...(configs.gateway.inbound as object), port: replicaPorts.inbound },
      outbound: { port: replicaPorts.outbound },
      admin: { port: replicaPorts.admin },
    };
    writeFileSync(join(dir, 'gateway-2.yaml'), stringify(replicaConfig), { mode: 0o600 });
    const replica = startBaton(['sidecar', '--config', join(dir, 'gateway-2.yaml')]);
    try {
      await waitFor(
        async () => {
          const r = await request(`http://127.0.0.1:${replicaPorts.admin}/metrics`);
          return (
            r.statusCode === 200 &&
            /^baton_redis_available 1$/m.test(await r.body.text()) &&
            (await request(`http://127.0.0.1:${replicaPorts.admin}/readyz`)).statusCode === 200
          );
        },
        { what: 'second gateway replica ready with Redis', timeoutMs: 20_000 },
      );
      // As the gateway app would, forwarding the token it was given, through the replica's outbound port.
      const before = tokenCalls;
      const r = await request(`http://127.0.0.1:${replicaPorts.outbound}/orders`, {
        method: 'POST',
        headers: { host: 'orders', authorization: `Bearer ${token}` },
      });
      await r.body.dump();
      assert.equal(r.statusCode, 200);
      assert.equal(
        tokenCalls,
        before,
        'no STS call: the tokens came from Redis (gateway → orders) and the orders sidecar (orders → payments)',
      );
    } finally {
      await replica.stop('SIGKILL');
    }
  });

  it('refuses a forbidden edge at the caller’s sidecar before any exchange', async () => {
    const token = await signUserToken('alice', 'shop');
    const before = tokenCalls;
    const r = await checkout(token, '/direct');
    assert.equal(r.status, 403);
    assert.equal((JSON.parse(r.text) as { code: string }).code, PolicyDeniedError.code);
    assert.equal(tokenCalls, before);
    await logLinesOut();
    for (const name of SERVICES)
      assert.ok(!(sidecars[name].process.stdout() + sidecars[name].process.stderr()).includes(token));
  });

  it('exchanges once for 100 concurrent calls with the same subject (single-flight)', async () => {
    const token = await signUserToken('bob', 'shop');
    const before = tokenCalls;
    const results = await Promise.all(Array.from({ length: 100 }, () => checkout(token)));
    assert.deepEqual([...new Set(results.map((r) => r.status))], [200]);
    // One exchange per hop: gateway → orders, orders → payments.
    assert.equal(tokenCalls - before, 2);
  });

  it('streams a 150 MB upload and a 150 MB download through both sidecar processes without buffering them', async () => {
    const token = await signUserToken('frank', 'shop');
    const size = 150 * 1024 * 1024;
    const peakBefore = SERVICES.map((n) => peakRssBytes(sidecars[n].process.child.pid as number));
    const upload = Readable.from(generateChunks(size));
    const r = await request(`http://127.0.0.1:${sidecars.gateway.inbound}/orders/bulk`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: upload,
    });
    let downloaded = 0;
    for await (const chunk of r.body) downloaded += (chunk as Buffer).length;
    assert.equal(r.statusCode, 200);
    assert.equal(Number(r.headers['x-received']), size);
    assert.equal(downloaded, size);
    // Garbage from streamed chunks raises the peak by some tens of MiB whatever
    // the size (measured: about 60 MiB for 50 MB and for 150 MB alike);
    // buffering a body would raise it by the body's size.
    const growth = SERVICES.map(
      (n, i) => (peakRssBytes(sidecars[n].process.child.pid as number) - (peakBefore[i] as number)) / 2 ** 20,
    );
    assert.ok(
      growth.every((mb) => mb < 100),
      `peak RSS grew by ${growth.map((mb) => mb.toFixed(1)).join(', ')} MiB for ${size / 2 ** 20} MiB each way`,
    );
  });

  it('keeps answering while Redis is killed and while the policy is reloaded', async () => {
    const token = await signUserToken('carol', 'shop');
    const statuses: number[] = [];
    let running = true;
    const load = Promise.all(
      Array.from({ length: 8 }, async () => {
        while (running) statuses.push((await checkout(token)).status);
      }),
    );
    // Each phase lasts until some requests have been answered in it.
    const answeredMore = async (n: number, what: string): Promise<void> => {
      const target = statuses.length + n;
      await waitFor(async () => statuses.length >= target, { what, timeoutMs: 10_000, intervalMs: 10 });
    };
    await answeredMore(8, 'requests answered before the faults');
    await redis.process.stop('SIGKILL');
    await answeredMore(8, 'requests answered with Redis killed');
    writeFileSync(policyFile, policyYaml('audit: {}'));
    await waitFor(async () => SERVICES.every((n) => /"policyVersion":2/.test(sidecars[n].process.stdout())), {
      what: 'policy reload in every sidecar',
      timeoutMs: 10_000,
    });
    await answeredMore(8, 'requests answered after the reload');
    running = false;
    await load;
    assert.ok(statuses.length > 20, `only ${statuses.length} requests ran`);
    assert.deepEqual([...new Set(statuses)], [200]);
  });

  it('keeps serving cached tokens while the STS is down', async () => {
    const token = await signUserToken('dave', 'shop');
    assert.equal((await checkout(token)).status, 200);
    await sts.stop('SIGKILL');
    const again = await Promise.all(Array.from({ length: 10 }, () => checkout(token)));
    assert.deepEqual([...new Set(again.map((r) => r.status))], [200]);
  });

  it('on SIGTERM turns not ready, finishes in-flight requests and exits 0', async () => {
    const token = await signUserToken('erin', 'shop');
    const held = slowArrived;
    const inflight = Array.from({ length: 5 }, () => checkout(token, '/slow'));
    await waitFor(async () => slowArrived - held === 5, {
      what: 'five requests inside the gateway app',
      timeoutMs: 5_000,
      intervalMs: 5,
    });
    const exited = sidecars.gateway.process.stop('SIGTERM');
    // Not ready as soon as the signal is handled: seen while draining (the admin port closes at exit).
    const readyzStatus = async (): Promise<number> => {
      const readyz = await request(`http://127.0.0.1:${sidecars.gateway.admin}/readyz`);
      await readyz.body.dump();
      return readyz.statusCode;
    };
    await waitFor(async () => (await readyzStatus()) === 503, {
      what: 'readyz 503 while draining',
      timeoutMs: 2_000,
      intervalMs: 5,
    });
    const results = await Promise.all(inflight);
    assert.deepEqual(
      results.map((r) => r.text),
      Array(5).fill('slow done'),
    );
    assert.equal(await exited, 0);
  });
});
