/**
 * The mesh the fault matrix breaks: real `baton policy-server`, `baton sts`
 * and `baton sidecar` processes (orders → payments) where every dependency
 * is reached through a fault proxy (test/helpers/fault-proxy.ts): the STS
 * token endpoint, the STS JWK Set, the policy server, Redis, the app and
 * the upstream sidecar. Timeouts are short so each row takes seconds.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject, randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { stringify } from 'yaml';
import { type FaultProxy, startFaultProxy } from './fault-proxy.ts';
import { freePort, waitFor } from './net.ts';
import { callGraph } from './policy.ts';
import { type RunningProcess, startBaton } from './process.ts';
import { type RedisServer, startRedis, writeMeshRedisSecrets } from './redis.ts';
import { closeServer, compact, es256, type Listening, listen } from './security-mesh.ts';

export const FAULT_POLICY = (extraPath = '') =>
  callGraph(
    `
gateway: { entrypoint: true }
orders:
  accepts:
    - { name: from-gateway, from: gateway, paths: ["/orders", "/orders/**", "/slow"${extraPath}] }
payments:
  accepts:
    - { name: charge, from: orders, methods: [POST], paths: ["/charges"] }
`,
    { name: 'faults', maxDepth: 4 },
  );

export interface FaultMesh {
  readonly dir: string;
  readonly policyFile: string;
  readonly stsUrl: string;
  readonly proxies: {
    readonly sts: FaultProxy;
    readonly jwks: FaultProxy;
    readonly policy: FaultProxy;
    readonly app: FaultProxy;
    readonly upstream: FaultProxy;
    readonly redis?: FaultProxy;
  };
  readonly redis?: RedisServer;
  readonly app: Listening;
  /** Requests that have reached the app's `/slow` route (it answers after 1.5 s). */
  readonly slowArrived: () => number;
  readonly payments: Listening;
  readonly stsProcess: () => RunningProcess;
  readonly policyServer: () => RunningProcess;
  readonly orders: RunningProcess;
  readonly ports: {
    readonly inbound: number;
    readonly outbound: number;
    readonly admin: number;
    readonly policy: number;
    readonly sts: number;
  };
  readonly policySigningKey: KeyObject;
  /** A mesh token for orders, chain [gateway], signed by the STS's current key. */
  ordersToken(overrides?: Record<string, unknown>): string;
  /** Calls orders inbound with a fresh token; returns the app-visible handle. */
  handle(): Promise<string>;
  /** orders → payments through the outbound port with a handle. */
  charge(handle: string): Promise<{ status: number; code?: string }>;
  restartSts(): Promise<void>;
  stopSts(): Promise<void>;
  startPolicyServer(): Promise<void>;
  stopPolicyServer(): Promise<void>;
  policyVersion(): Promise<number>;
  stop(): Promise<void>;
}

export async function startFaultMesh(
  options: { redis?: boolean; inbound?: Record<string, unknown> } = {},
): Promise<FaultMesh> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-faults-'));
  const cleanups: Array<() => Promise<unknown>> = [];
  const stop = async (): Promise<void> => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const policyFile = join(dir, 'callgraph.yaml');
    writeFileSync(policyFile, FAULT_POLICY());
    const signing = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(join(dir, 'policy.key.pem'), signing.privateKey.export({ type: 'pkcs8', format: 'pem' }), {
      mode: 0o600,
    });
    writeFileSync(join(dir, 'policy.pub.pem'), signing.publicKey.export({ type: 'spki', format: 'pem' }));

    const policyPort = await freePort();
    let policyServer: RunningProcess | undefined;
    const startPolicyServer = async (): Promise<void> => {
      policyServer = startBaton([
        'policy-server',
        '--policy',
        policyFile,
        '--signing-key',
        join(dir, 'policy.key.pem'),
        '--port',
        String(policyPort),
        '--state',
        join(dir, 'policy.state'),
        '--transport',
        'plaintext',
      ]);
      await waitFor(
        async () =>
          await request(`http://127.0.0.1:${policyPort}/readyz`).then(
            async (r) => (await r.body.dump(), r.statusCode === 200),
          ),
        { timeoutMs: 15_000, what: 'policy server' },
      );
    };
    await startPolicyServer();
    cleanups.push(async () => policyServer?.stop('SIGKILL'));
    const policyProxy = await startFaultProxy({ port: policyPort });
    cleanups.push(() => policyProxy.close());

    const redisSecrets = options.redis === true ? await writeMeshRedisSecrets(['orders']) : undefined;
    if (redisSecrets !== undefined) cleanups.push(async () => redisSecrets.remove());
    const redis = redisSecrets === undefined ? undefined : await startRedis({ aclFile: redisSecrets.aclFile });
    if (redis !== undefined) cleanups.push(() => redis.stop());
    const redisProxy = redis === undefined ? undefined : await startFaultProxy({ port: redis.port });
    if (redisProxy !== undefined) cleanups.push(() => redisProxy.close());

    const secrets = {
      gateway: `secret-gateway-${randomUUID()}`,
      orders: `secret-orders-${randomUUID()}`,
      payments: `secret-payments-${randomUUID()}`,
    };
    const stsPort = await freePort();
    const stsUrl = `http://127.0.0.1:${stsPort}`;
    const keysDir = join(dir, 'sts-keys');
    writeFileSync(
      join(dir, 'sts.yaml'),
      stringify({
        issuer: stsUrl,
        port: stsPort,
        policy: { url: policyProxy.url, publicKey: join(dir, 'policy.pub.pem') },
        keys: { dir: keysDir },
        // Faults of the plaintext mesh; a fault proxy in the middle would be refused by mTLS, which is its point.
        transport: { mode: 'plaintext' },
        clients: Object.entries(secrets).map(([id, secret]) => ({ id, secret })),
      }),
    );
    let sts: RunningProcess | undefined;
    const startSts = async (): Promise<void> => {
      sts = startBaton(['sts', '--config', join(dir, 'sts.yaml')]);
      await sts.waitForOutput(/"msg":"sts listening"/, 20_000);
    };
    await startSts();
    cleanups.push(async () => sts?.stop('SIGKILL'));
    const stsProxy = await startFaultProxy({ port: stsPort });
    const jwksProxy = await startFaultProxy({ port: stsPort });
    cleanups.push(
      () => stsProxy.close(),
      () => jwksProxy.close(),
    );
    const keyFile = readdirSync(keysDir).find((f) => f.endsWith('.pem')) as string;
    const stsKey = createPrivateKey(readFileSync(join(keysDir, keyFile), 'utf8'));
    const stsKid = ((await (await request(`${stsUrl}/jwks`)).body.json()) as { keys: Array<{ kid: string }> }).keys[0]
      ?.kid as string;

    let slowArrived = 0;
    const app = await listen((req, res) => {
      if (req.url === '/slow') slowArrived++;
      req.resume();
      const respond = (): void => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"ok":true}');
      };
      if (req.url === '/slow') setTimeout(respond, 1_500);
      else respond();
    });
    const payments = await listen();
    cleanups.push(
      () => closeServer(app.server),
      () => closeServer(payments.server),
    );
    const appProxy = await startFaultProxy({ port: app.port });
    const upstreamProxy = await startFaultProxy({ port: payments.port });
    cleanups.push(
      () => appProxy.close(),
      () => upstreamProxy.close(),
    );

    const ports = {
      inbound: await freePort(),
      outbound: await freePort(),
      admin: await freePort(),
      policy: policyPort,
      sts: stsPort,
    };
    writeFileSync(
      join(dir, 'orders.yaml'),
      stringify({
        service: 'orders',
        inbound: { port: ports.inbound, app: appProxy.url, timeoutMs: 500, ...options.inbound },
        outbound: { port: ports.outbound, timeoutMs: 500 },
        admin: { port: ports.admin },
        sts: {
          issuer: stsUrl,
          clientId: 'orders',
          clientSecret: secrets.orders,
          tokenEndpoint: `${stsProxy.url}/token`,
          jwksUri: `${jwksProxy.url}/jwks`,
        },
        transport: { mode: 'plaintext' },
        policy: { url: policyProxy.url, publicKey: join(dir, 'policy.pub.pem') },
        // payments' "sidecar" is a plain app behind a proxy: the row tests the orders sidecar's behaviour toward it.
        upstreams: { payments: upstreamProxy.url },
        ...(redisProxy === undefined || redisSecrets === undefined
          ? {}
          : {
              redis: {
                url: `redis://127.0.0.1:${redisProxy.port}`,
                passwordFile: redisSecrets.sidecar('orders').passwordFile,
                sealKeyFile: redisSecrets.sidecar('orders').sealKeyFile,
              },
            }),
        shutdown: { graceMs: 3_000 },
      }),
    );
    const orders = startBaton(['sidecar', '--config', join(dir, 'orders.yaml')]);
    cleanups.push(() => orders.stop('SIGKILL'));
    await waitFor(
      async () => {
        if (orders.child.exitCode !== null) throw new Error(`orders exited: ${orders.stderr()}`);
        const r = await request(`http://127.0.0.1:${ports.admin}/readyz`);
        await r.body.dump();
        return r.statusCode === 200;
      },
      { timeoutMs: 20_000, what: 'orders sidecar ready' },
    );

    const nowSec = (): number => Math.floor(Date.now() / 1000);
    const ordersToken = (overrides: Record<string, unknown> = {}): string => {
      const sub = `user-${randomUUID()}`;
      return compact(
        { alg: 'ES256', typ: 'at+jwt', kid: stsKid },
        {
          iss: stsUrl,
          sub,
          sub_id: { format: 'iss_sub', iss: 'https://idp.fault.test', sub },
          sub_type: 'user',
          aud: 'orders',
          client_id: 'gateway',
          act: { sub: 'gateway' },
          scope: 'shop',
          txn: randomUUID(),
          jti: randomUUID(),
          iat: nowSec(),
          exp: nowSec() + 300,
          ...overrides,
        },
        es256(stsKey),
      );
    };
    const mesh: FaultMesh = {
      dir,
      policyFile,
      stsUrl,
      app,
      payments,
      orders,
      ports,
      redis: redis as RedisServer,
      slowArrived: () => slowArrived,
      proxies: {
        sts: stsProxy,
        jwks: jwksProxy,
        policy: policyProxy,
        app: appProxy,
        upstream: upstreamProxy,
        ...(redisProxy === undefined ? {} : { redis: redisProxy }),
      },
      stsProcess: () => sts as RunningProcess,
      policyServer: () => policyServer as RunningProcess,
      policySigningKey: signing.privateKey,
      ordersToken,
      async handle() {
        const r = await request(`http://127.0.0.1:${ports.inbound}/orders`, {
          headers: { authorization: `Bearer ${ordersToken()}` },
        });
        await r.body.dump();
        if (r.statusCode !== 200) throw new Error(`orders inbound answered ${r.statusCode}`);
        return String(app.seen.at(-1)?.headers['baton-context']);
      },
      async charge(handle) {
        const r = await request(`http://127.0.0.1:${ports.outbound}/charges`, {
          method: 'POST',
          headers: { host: 'payments', 'baton-context': handle },
          headersTimeout: 5_000,
        });
        const text = await r.body.text();
        return {
          status: r.statusCode,
          ...(text.startsWith('{') && 'code' in JSON.parse(text)
            ? { code: String((JSON.parse(text) as { code: unknown }).code) }
            : {}),
        };
      },
      async restartSts() {
        await sts?.stop('SIGTERM');
        await startSts();
      },
      async stopSts() {
        await sts?.stop('SIGKILL');
      },
      startPolicyServer,
      async stopPolicyServer() {
        await policyServer?.stop('SIGKILL');
      },
      async policyVersion() {
        const r = await request(`http://127.0.0.1:${ports.admin}/metrics`);
        const text = await r.body.text();
        return Number(/^baton_policy_version(?:\{[^}]*\})? (\d+)/m.exec(text)?.[1] ?? NaN);
      },
      stop,
    };
    return mesh;
  } catch (error) {
    await stop();
    throw error;
  }
}
