/**
 * Whose user it is, through real processes: a real `baton sts` and three
 * real `baton sidecar`s (gateway → orders → payments) trusting three
 * identity providers at the entrypoint:
 *
 * - A, Keycloak-shaped: issuer with a realm path (keys found by OpenID
 *   Connect Discovery, after the RFC 8414 URL with the path inserted
 *   answers 404), `typ: JWT`, `aud: ["gateway", "account"]`;
 * - B, strict RFC 9068 (`at+jwt`, one aud);
 * - C, a real oidc-provider issuing opaque tokens, read by RFC 7662
 *   introspection at the sidecar and at the STS;
 * - D, a real oidc-provider issuing RFC 9068 JWT access tokens, its keys
 *   found by discovery.
 *
 * A and B both have a user `alice`. They must stay two people at every hop.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { request } from 'undici';
import { stringify } from 'yaml';
import { closeServer, listen } from '../helpers/http-server.ts';
import { freePort, waitFor } from '../helpers/net.ts';
import { OP_INTROSPECTOR, type OidcProvider, startOidcProvider } from '../helpers/oidc-provider.ts';
import { type RunningProcess, startBaton } from '../helpers/process.ts';
import { TokenInactiveError, TokenWrongTypError } from '../../src/token/errors.ts';
import { callGraph } from '../helpers/policy.ts';

const SERVICES = ['gateway', 'orders', 'payments'] as const;
type Name = (typeof SERVICES)[number];

// /staff is for users of the Keycloak realm only: the same sub from another IdP is another person.
const policy = (staffIssuer: string) =>
  callGraph(
    `
gateway:
  entrypoint: true
  accepts:
    - { name: staff, from: external, paths: ["/staff/**"], issuers: ["${staffIssuer}"] }
    - { name: public, from: external, paths: ["/checkout"], user: optional }
orders:
  accepts:
    - { name: from-gateway, from: gateway, user: optional }
payments:
  accepts:
    - { name: charge, from: orders, origins: [gateway], user: required }
`,
    { name: 'idps', maxDepth: 4 },
  );

interface Seen {
  readonly service: Name;
  readonly subject: string | undefined;
  readonly issuer: string | undefined;
  readonly type: string | undefined;
  readonly txn: string | undefined;
}

async function startJwtIdp(options: { path: string; discovery: boolean }) {
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  const kid = `kid-${randomUUID()}`;
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  let issuer = '';
  const server = await listen((req, res) => {
    req.resume();
    const url = req.url ?? '';
    if (options.discovery && url === `${options.path}/.well-known/openid-configuration`) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/protocol/openid-connect/certs` }));
      return;
    }
    if (url.endsWith('/certs') || url.endsWith('/jwks')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
      return;
    }
    res.writeHead(404);
    res.end();
  });
  issuer = `${server.url}${options.path}`;
  const sign = (claims: Record<string, unknown>, typ: string | undefined) =>
    new SignJWT({ jti: randomUUID(), ...claims })
      .setProtectedHeader({ alg: 'RS256', kid, ...(typ === undefined ? {} : { typ }) })
      .setIssuer(issuer)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
  return { issuer, server: server.server, sign };
}

describe('identity providers at the entrypoint, through real sidecar and STS processes', { timeout: 90_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-e2e-idps-'));
  const servers: Server[] = [];
  const processes: RunningProcess[] = [];
  const sidecars = {} as Record<Name, { process: RunningProcess; inbound: number; outbound: number; admin: number }>;
  let sts: RunningProcess;
  let keycloak: Awaited<ReturnType<typeof startJwtIdp>>;
  let strict: Awaited<ReturnType<typeof startJwtIdp>>;
  let op: OidcProvider;
  let jwtOp: OidcProvider;
  let seen: Seen[] = [];

  before(async () => {
    keycloak = await startJwtIdp({ path: '/realms/shop', discovery: true });
    strict = await startJwtIdp({ path: '', discovery: false });
    op = await startOidcProvider({ format: 'opaque' });
    jwtOp = await startOidcProvider({ format: 'jwt' });
    servers.push(keycloak.server, strict.server);
    const introspection = { clientId: OP_INTROSPECTOR.id, clientSecret: OP_INTROSPECTOR.secret };
    const policyFile = join(dir, 'callgraph.yaml');
    writeFileSync(policyFile, policy(keycloak.issuer));
    const secrets = Object.fromEntries(SERVICES.map((n) => [n, `secret-${n}-${randomUUID()}`])) as Record<Name, string>;
    const stsPort = await freePort();
    const stsUrl = `http://127.0.0.1:${stsPort}`;
    writeFileSync(
      join(dir, 'sts.yaml'),
      stringify({
        issuer: stsUrl,
        port: stsPort,
        // Whose user it is does not depend on the transport (test/e2e/mtls.test.ts covers that): plaintext keeps the IdPs simple.
        transport: { mode: 'plaintext' },
        policy: { file: policyFile },
        clients: SERVICES.map((id) => ({ id, secret: secrets[id] })),
        externalIssuers: [
          { issuer: keycloak.issuer, discovery: true, profile: 'keycloak', audience: 'gateway' },
          { issuer: strict.issuer, jwksUri: `${strict.issuer}/jwks`, audience: 'gateway' },
          { issuer: op.issuer, discovery: true, audience: 'gateway', introspection },
          { issuer: jwtOp.issuer, discovery: true, audience: 'gateway' },
        ],
      }),
      { mode: 0o600 },
    );
    sts = startBaton(['sts', '--config', join(dir, 'sts.yaml')]);
    processes.push(sts);
    await sts.waitForOutput(/"msg":"sts listening"/, 20_000);

    const ports = {} as Record<Name, { inbound: number; outbound: number; admin: number }>;
    for (const name of SERVICES)
      ports[name] = { inbound: await freePort(), outbound: await freePort(), admin: await freePort() };
    const next: Partial<Record<Name, { service: Name; path: string }>> = {
      gateway: { service: 'orders', path: '/orders' },
      orders: { service: 'payments', path: '/charges' },
    };
    const app = (self: Name) => async (req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      const header = (name: string) => (req.headers[name] === undefined ? undefined : String(req.headers[name]));
      seen.push({
        service: self,
        subject: header('baton-subject'),
        issuer: header('baton-subject-issuer'),
        type: header('baton-subject-type'),
        txn: header('baton-txn'),
      });
      const hop = next[self];
      if (hop === undefined) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"ok":true}');
        return;
      }
      const response = await request(`http://127.0.0.1:${ports[self].outbound}${hop.path}`, {
        method: 'POST',
        headers: { host: hop.service, 'baton-context': String(req.headers['baton-context']) },
      });
      res.writeHead(response.statusCode, { 'content-type': String(response.headers['content-type'] ?? 'text/plain') });
      response.body.pipe(res);
    };
    for (const name of SERVICES) {
      const listening = await listen((req, res) => void app(name)(req, res));
      servers.push(listening.server);
      const config = {
        service: name,
        transport: { mode: 'plaintext' },
        inbound: { port: ports[name].inbound, app: listening.url },
        outbound: { port: ports[name].outbound },
        admin: { port: ports[name].admin },
        sts: { issuer: stsUrl, clientId: name, clientSecret: secrets[name] },
        policy: { file: policyFile },
        upstreams: {
          orders: `http://127.0.0.1:${ports.orders.inbound}`,
          payments: `http://127.0.0.1:${ports.payments.inbound}`,
        },
        ...(name === 'gateway'
          ? {
              externalIssuers: [
                { issuer: keycloak.issuer, profile: 'keycloak' },
                { issuer: strict.issuer, jwksUri: `${strict.issuer}/jwks` },
                { issuer: op.issuer, introspection },
                { issuer: jwtOp.issuer },
              ],
            }
          : {}),
      };
      writeFileSync(join(dir, `${name}.yaml`), stringify(config), { mode: 0o600 });
      const process = startBaton(['sidecar', '--config', join(dir, `${name}.yaml`)]);
      processes.push(process);
      sidecars[name] = { process, ...ports[name] };
    }
    for (const name of SERVICES) {
      await waitFor(
        async () => {
          if (sidecars[name].process.child.exitCode !== null)
            throw new Error(`${name} sidecar exited: ${sidecars[name].process.stderr().slice(-2000)}`);
          const r = await request(`http://127.0.0.1:${sidecars[name].admin}/readyz`);
          await r.body.dump();
          return r.statusCode === 200;
        },
        { what: `${name} sidecar ready`, timeoutMs: 20_000 },
      );
    }
  });

  after(async () => {
    await Promise.all(processes.map((p) => p.stop('SIGTERM', 5_000)));
    await op?.close();
    await jwtOp?.close();
    for (const server of servers) await closeServer(server);
    rmSync(dir, { recursive: true, force: true });
  });

  async function enter(
    token: string,
    path = '/checkout',
  ): Promise<{ status: number; body: Record<string, unknown>; seen: Seen[] }> {
    seen = [];
    const r = await request(`http://127.0.0.1:${sidecars.gateway.inbound}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    });
    const text = await r.body.text();
    assert.ok(!text.includes(token));
    return {
      status: r.statusCode,
      body: text.startsWith('{') ? (JSON.parse(text) as Record<string, unknown>) : {},
      seen,
    };
  }

  const keycloakUser = (sub: string) =>
    keycloak.sign(
      {
        sub,
        aud: ['gateway', 'account'],
        typ: 'Bearer',
        azp: 'web-shop',
        scope: 'openid profile',
        realm_access: { roles: ['user'] },
      },
      'JWT',
    );
  const strictUser = (sub: string) =>
    strict.sign({ sub, aud: 'gateway', client_id: 'shop-web', scope: 'shop' }, 'at+jwt');

  it('two identity providers with the same sub are two identities at every hop: headers and audit trail', async () => {
    const fromA = await enter(await keycloakUser('alice'));
    const fromB = await enter(await strictUser('alice'));
    assert.equal(fromA.status, 200, JSON.stringify(fromA.body));
    assert.equal(fromB.status, 200, JSON.stringify(fromB.body));
    for (const [run, issuer] of [
      [fromA, keycloak.issuer],
      [fromB, strict.issuer],
    ] as const) {
      assert.deepEqual(
        run.seen.map((s) => s.service),
        ['gateway', 'orders', 'payments'],
      );
      for (const hop of run.seen) {
        assert.equal(hop.subject, 'alice');
        assert.equal(hop.issuer, issuer, `${hop.service} names the issuer that authenticated alice`);
        assert.equal(hop.type, 'user');
      }
    }
    // The audit trail: every decision line at every hop, and the STS's issuance lines, name the subject's issuer.
    const txnA = fromA.seen[0]?.txn as string;
    const txnB = fromB.seen[0]?.txn as string;
    assert.notEqual(txnA, txnB);
    for (const name of SERVICES) {
      // Log lines are buffered for up to 200 ms in the sidecar (src/telemetry/logger.ts): wait for them.
      const decisionLines = () =>
        sidecars[name].process
          .stdout()
          .split('\n')
          .filter((l) => l.includes('"event":"decision"'));
      const has = (txn: string, issuer: string) =>
        decisionLines().some((l) => l.includes(`"txn":"${txn}"`) && l.includes(`"subjectIssuer":"${issuer}"`));
      await waitFor(async () => has(txnA, keycloak.issuer) && has(txnB, strict.issuer), {
        what: `${name}'s audit lines for A and B`,
        timeoutMs: 5_000,
      });
      assert.ok(has(txnA, keycloak.issuer), `${name} audit line for A`);
      assert.ok(has(txnB, strict.issuer), `${name} audit line for B`);
    }
    const issuedFor = (txn: string, issuer: string) =>
      sts
        .stdout()
        .split('\n')
        .some(
          (l) =>
            l.includes('token issued') && l.includes(`"txn":"${txn}"`) && l.includes(`"subjectIssuer":"${issuer}"`),
        );
    await waitFor(async () => issuedFor(txnA, keycloak.issuer) && issuedFor(txnB, strict.issuer), {
      what: "the STS's issuance lines for A and B",
      timeoutMs: 5_000,
    });
  });

  it('lets a policy rule tell the two alices apart by issuer', async () => {
    const staff = await enter(await keycloakUser('alice'), '/staff/reports');
    assert.equal(staff.status, 200, JSON.stringify(staff.body));
    const other = await enter(await strictUser('alice'), '/staff/reports');
    assert.equal(other.status, 403);
    assert.equal(other.body.rule, 'gateway.accepts.staff');
    assert.equal(other.body.cause, 'issuer');
    assert.equal(other.seen.length, 0);
  });

  it('encodes a subject with a leading space, so the last hop never sees plain alice', async () => {
    const run = await enter(await strictUser(' alice'));
    assert.equal(run.status, 200);
    assert.deepEqual(
      run.seen.map((s) => s.subject),
      ['%20alice', '%20alice', '%20alice'],
    );
  });

  it('reads an opaque oidc-provider token by introspection, as a service identity that user: required refuses', async () => {
    const token = await op.accessToken();
    const run = await enter(token);
    // gateway → orders allows a service identity; orders → payments requires a user: refused at the orders sidecar.
    assert.equal(run.status, 403, JSON.stringify(run.body));
    assert.equal(run.body.rule, 'payments.accepts.charge');
    assert.equal(run.body.cause, 'user');
    assert.deepEqual(
      run.seen.map((s) => [s.service, s.subject, s.issuer, s.type]),
      [
        ['gateway', 'web', op.issuer, 'service'],
        ['orders', 'web', op.issuer, 'service'],
      ],
    );
  });

  it('verifies an oidc-provider JWT access token with keys from discovery, as a service identity, the same way', async () => {
    const run = await enter(await jwtOp.accessToken());
    assert.equal(run.status, 403, JSON.stringify(run.body));
    assert.equal(run.body.cause, 'user');
    assert.deepEqual(
      run.seen.map((s) => [s.service, s.subject, s.issuer, s.type]),
      [
        ['gateway', 'web', jwtOp.issuer, 'service'],
        ['orders', 'web', jwtOp.issuer, 'service'],
      ],
    );
  });

  it('refuses a revoked or unknown opaque token, and a Keycloak id_token, at the entrypoint', async () => {
    const unknown = await enter('x'.repeat(43));
    assert.equal(unknown.status, 401);
    assert.equal(unknown.body.code, TokenInactiveError.code);
    const token = await op.accessToken();
    await op.revoke(token);
    assert.equal((await enter(token)).body.code, TokenInactiveError.code);
    const idToken = await keycloak.sign(
      { sub: 'alice', aud: 'gateway', typ: 'ID', azp: 'gateway', nonce: 'n-1', at_hash: 'x' },
      'JWT',
    );
    const refused = await enter(idToken);
    assert.equal(refused.status, 401);
    assert.deepEqual([refused.body.code, refused.body.reason], [TokenWrongTypError.code, 'id-token']);
    assert.equal(refused.seen.length, 0);
  });
});
