/**
 * The target of the attack suite: a real `baton sts` and three real
 * `baton sidecar` processes (gateway → orders → payments) with a local
 * policy file, loopback apps that record what reaches them, two external
 * IdPs whose JWK Sets count their fetches, and a trap server that must
 * never be contacted. The STS signing key is read from its keys.dir so a
 * test can sign tokens "with the right key" and show that the signature
 * alone does not make a token acceptable.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject, randomUUID, sign } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { stringify } from 'yaml';
import { redisSecretsLayout } from '../../src/redis/acl.ts';
import { freePort, waitFor } from './net.ts';
import { callGraph } from './policy.ts';
import { type RunningProcess, startBaton } from './process.ts';
import { closeServer, type Listening, listen } from './http-server.ts';

export { closeServer, type Listening, listen } from './http-server.ts';

export const SERVICES = ['gateway', 'orders', 'payments'] as const;
export type Name = (typeof SERVICES)[number];

export const POLICY = callGraph(
  `
gateway: { entrypoint: true }
orders:
  accepts:
    - { name: from-gateway, from: gateway, methods: [GET, POST], paths: ["/orders", "/orders/**"], scopes: "shop" }
payments:
  accepts:
    - { name: charge, from: orders, origins: [gateway], methods: [GET, POST], paths: ["/charges", "/redirect"], scopes: "shop" }
`,
  { name: 'security', maxDepth: 4 },
);

/** A signer for raw compact JWS: any header, any payload, any bytes. */
export type Signer = (signingInput: Buffer) => Buffer;

export const es256 =
  (key: KeyObject): Signer =>
  (input) =>
    sign('sha256', input, { key, dsaEncoding: 'ieee-p1363' });
export const rs256 =
  (key: KeyObject): Signer =>
  (input) =>
    sign('sha256', input, key);

/**
 * A compact JWS built by hand, so headers jose would refuse to produce
 * (`alg: none`, duplicate members, `crit`, `b64`) can be sent. Header and
 * payload may be given as raw JSON text.
 */
export function compact(header: object | string, payload: object | string, signer: Signer | Buffer): string {
  const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header)).toString('base64url');
  const p = Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload)).toString('base64url');
  const signature = Buffer.isBuffer(signer) ? signer : signer(Buffer.from(`${h}.${p}`));
  return `${h}.${p}.${signature.toString('base64url')}`;
}

export interface Idp {
  readonly issuer: string;
  readonly jwksHits: () => number;
  readonly privateKey: KeyObject;
  readonly rsaKey: KeyObject;
  readonly kid: string;
  readonly rsaKid: string;
  readonly listening: Listening;
}

async function startIdp(name: string): Promise<Idp> {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = `${name}-ec`;
  const rsaKid = `${name}-rsa`;
  const jwks = {
    keys: [
      { ...ec.publicKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' },
      { ...rsa.publicKey.export({ format: 'jwk' }), kid: rsaKid, alg: 'RS256', use: 'sig' },
    ],
  };
  const listening = await listen((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(jwks));
  });
  return {
    issuer: listening.url,
    jwksHits: () => listening.hits,
    privateKey: ec.privateKey,
    rsaKey: rsa.privateKey,
    kid,
    rsaKid,
    listening,
  };
}

export interface SecurityMesh {
  readonly dir: string;
  readonly stsUrl: string;
  readonly stsKey: KeyObject;
  readonly stsKid: string;
  readonly secrets: Readonly<Record<Name, string>>;
  readonly idpA: Idp;
  readonly idpB: Idp;
  readonly trap: Listening;
  readonly apps: Readonly<Record<Name, Listening>>;
  readonly ports: Readonly<Record<Name, { inbound: number; outbound: number; admin: number }>>;
  readonly sts: RunningProcess;
  readonly sidecars: Readonly<Record<Name, RunningProcess>>;
  /** A mesh token signed with the STS key: the claims a real exchange for `aud` would carry, then `overrides`. */
  meshToken(
    aud: Name,
    chain: readonly string[],
    overrides?: Record<string, unknown>,
    header?: Record<string, unknown>,
  ): string;
  /** A user token from IdP A for the gateway. */
  userToken(overrides?: Record<string, unknown>, header?: Record<string, unknown>, idp?: Idp): string;
  /** A real exchange at the STS as `client`. */
  exchange(client: Name, form: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }>;
  inbound(name: Name, path?: string): string;
  outbound(name: Name, path?: string): string;
  stop(): Promise<void>;
}

export interface SecurityMeshOptions {
  /** Sidecars share exchanged tokens through this Redis, with the secrets `baton redis-acl` wrote into `secretsDir`. */
  readonly redis?: { readonly url: string; readonly secretsDir: string };
  /** Extra config sections per sidecar (`inbound`, `cache`, …), merged over the fixture's. */
  readonly sidecars?: Partial<Record<Name, Record<string, Record<string, unknown>>>>;
}

export async function startSecurityMesh(options: SecurityMeshOptions = {}): Promise<SecurityMesh> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-security-'));
  const servers: Server[] = [];
  const processes: RunningProcess[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(processes.map((p) => p.stop('SIGTERM', 5_000)));
    await Promise.all(servers.map(closeServer));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const idpA = await startIdp('idp-a');
    const idpB = await startIdp('idp-b');
    const trap = await listen();
    servers.push(idpA.listening.server, idpB.listening.server, trap.server);

    const policyFile = join(dir, 'callgraph.yaml');
    writeFileSync(policyFile, POLICY);
    const secrets = Object.fromEntries(SERVICES.map((n) => [n, `secret-${n}-${randomUUID()}`])) as Record<Name, string>;
    const stsPort = await freePort();
    const stsUrl = `http://127.0.0.1:${stsPort}`;
    const keysDir = join(dir, 'sts-keys');
    writeFileSync(
      join(dir, 'sts.yaml'),
      stringify({
        issuer: stsUrl,
        port: stsPort,
        policy: { file: policyFile },
        keys: { dir: keysDir },
        // These attacks are on tokens and HTTP, not on the transport: test/e2e/mtls-*.test.ts attack mTLS.
        transport: { mode: 'plaintext' },
        clients: SERVICES.map((id) => ({ id, secret: secrets[id] })),
        externalIssuers: [{ issuer: idpA.issuer, jwksUri: `${idpA.issuer}/jwks`, audience: 'gateway' }],
      }),
    );
    const sts = startBaton(['sts', '--config', join(dir, 'sts.yaml')]);
    processes.push(sts);
    await sts.waitForOutput(/"msg":"sts listening"/, 20_000);
    const keyFile = readdirSync(keysDir).find((f) => f.endsWith('.pem'));
    if (keyFile === undefined) throw new Error('the STS wrote no signing key');
    const stsKey = createPrivateKey(readFileSync(join(keysDir, keyFile), 'utf8'));
    const jwks = (await (await request(`${stsUrl}/jwks`)).body.json()) as { keys: Array<{ kid: string }> };
    const stsKid = jwks.keys[0]?.kid as string;

    const apps = {} as Record<Name, Listening>;
    apps.gateway = await listen();
    apps.orders = await listen();
    apps.payments = await listen((req, res) => {
      req.resume();
      if (req.url === '/redirect') {
        // An upstream trying to send the caller's sidecar somewhere else.
        res.writeHead(302, { location: `${trap.url}/stolen` });
        res.end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
    servers.push(...SERVICES.map((n) => apps[n].server));

    const ports = {} as Record<Name, { inbound: number; outbound: number; admin: number }>;
    for (const name of SERVICES)
      ports[name] = { inbound: await freePort(), outbound: await freePort(), admin: await freePort() };
    const sidecars = {} as Record<Name, RunningProcess>;
    for (const name of SERVICES) {
      const file = join(dir, `${name}.yaml`);
      const extra = options.sidecars?.[name] ?? {};
      writeFileSync(
        file,
        stringify({
          ...extra,
          service: name,
          inbound: { port: ports[name].inbound, app: apps[name].url, timeoutMs: 2_000, ...extra.inbound },
          outbound: { port: ports[name].outbound, timeoutMs: 2_000 },
          admin: { port: ports[name].admin },
          sts: { issuer: stsUrl, clientId: name, clientSecret: secrets[name] },
          transport: { mode: 'plaintext' },
          policy: { file: policyFile },
          upstreams: Object.fromEntries(
            SERVICES.filter((n) => n !== name).map((n) => [n, `http://127.0.0.1:${ports[n].inbound}`]),
          ),
          ...(name === 'gateway'
            ? {
                externalIssuers: [idpA, idpB].map((idp) => ({
                  issuer: idp.issuer,
                  jwksUri: `${idp.issuer}/jwks`,
                  audience: 'gateway',
                })),
              }
            : {}),
          ...(options.redis === undefined
            ? {}
            : { redis: { url: options.redis.url, ...redisSecretsLayout.sidecar(options.redis.secretsDir, name) } }),
          // payments takes large tokens so a 1,000-deep act reaches the act unwinding instead of the size limit.
          ...(name === 'payments' ? { limits: { maxTokenBytes: 65_536, maxHeaderBytes: 131_072 } } : {}),
        }),
      );
      sidecars[name] = startBaton(['sidecar', '--config', file]);
      processes.push(sidecars[name]);
    }
    await Promise.all(
      SERVICES.map((name) =>
        waitFor(
          async () => {
            if (sidecars[name].child.exitCode !== null)
              throw new Error(`${name} sidecar exited: ${sidecars[name].stderr().slice(-2000)}`);
            const r = await request(`http://127.0.0.1:${ports[name].admin}/readyz`);
            await r.body.dump();
            return r.statusCode === 200;
          },
          { timeoutMs: 20_000, what: `${name} sidecar ready` },
        ),
      ),
    );

    const nowSec = (): number => Math.floor(Date.now() / 1000);
    const act = (chain: readonly string[]): unknown =>
      chain.reduce<unknown>((inner, sub) => (inner === undefined ? { sub } : { sub, act: inner }), undefined);
    return {
      dir,
      stsUrl,
      stsKey,
      stsKid,
      secrets,
      idpA,
      idpB,
      trap,
      apps,
      ports,
      sts,
      sidecars,
      meshToken(aud, chain, overrides = {}, header = {}) {
        const claims = {
          // sub_id names the same subject as sub (RFC 9493 §4.1), unless a test overrides it on purpose.
          iss: stsUrl,
          sub: 'alice',
          sub_id: {
            format: 'iss_sub',
            iss: idpA.issuer,
            sub: typeof overrides.sub === 'string' ? overrides.sub : 'alice',
          },
          sub_type: 'user',
          aud,
          client_id: chain.at(-1),
          act: act(chain),
          scope: 'shop',
          txn: 'txn-security',
          jti: randomUUID(),
          iat: nowSec(),
          exp: nowSec() + 300,
          ...overrides,
        };
        return compact(
          { alg: 'ES256', typ: 'at+jwt', kid: stsKid, ...header },
          JSON.parse(JSON.stringify(claims)) as object,
          es256(stsKey),
        );
      },
      userToken(overrides = {}, header = {}, idp = idpA) {
        const claims = {
          iss: idp.issuer,
          sub: 'alice',
          aud: 'gateway',
          scope: 'shop',
          client_id: 'web',
          jti: randomUUID(),
          iat: nowSec(),
          exp: nowSec() + 300,
          ...overrides,
        };
        return compact({ alg: 'ES256', typ: 'at+jwt', kid: idp.kid, ...header }, claims, es256(idp.privateKey));
      },
      async exchange(client, form) {
        const r = await request(`${stsUrl}/token`, {
          method: 'POST',
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            authorization: `Basic ${Buffer.from(`${client}:${secrets[client]}`).toString('base64')}`,
          },
          body: new URLSearchParams(form).toString(),
        });
        return { status: r.statusCode, body: (await r.body.json()) as Record<string, unknown> };
      },
      inbound: (name, path = '/') => `http://127.0.0.1:${ports[name].inbound}${path}`,
      outbound: (name, path = '/') => `http://127.0.0.1:${ports[name].outbound}${path}`,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Every log line the mesh's processes wrote, for scanning for secrets. */
export function allOutput(mesh: SecurityMesh): string {
  return [mesh.sts, ...Object.values(mesh.sidecars)].map((p) => p.stdout() + p.stderr()).join('\n');
}
