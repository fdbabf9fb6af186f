/**
 * mTLS and certificate-bound tokens end to end, with real processes: the
 * demo mesh (policy server, STS, three sidecars) in its default mtls mode,
 * its orders app replaced by one that keeps what it is given
 * (`forwardToken`), and attackers that are this test process holding other
 * certificates, or none.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent, type Dispatcher, request } from 'undici';
import { stringify } from 'yaml';
import { DEMO_SPIFFE, type Mesh, startMesh } from '../../src/demo/mesh.ts';
import { DEMO_USER, postInbound } from '../../src/demo/scenario.ts';
import { createDevCa, issueSvid, writeDevIdentities } from '../../src/identity/dev-ca.ts';
import { spiffeId } from '../../src/identity/spiffe-id.ts';
import { certificateThumbprint } from '../../src/identity/svid.ts';
import { type Listening, listen } from '../helpers/http-server.ts';
import { freePort, waitFor } from '../helpers/net.ts';
import { logLinesOut, type RunningProcess, startBaton } from '../helpers/process.ts';
import {
  PeerUnmappedError,
  TokenCertificateMismatchError,
  UpstreamIdentityMismatchError,
} from '../../src/sidecar/errors.ts';
import { ExchangeRefusedError } from '../../src/sidecar/exchange/errors.ts';
import { InvalidClientError } from '../../src/sts/errors.ts';

type Workload = 'gateway' | 'orders' | 'payments' | 'baton-sts' | 'baton-policy-server';

describe('mTLS mesh and certificate-bound tokens (RFC 8705)', { timeout: 240_000 }, () => {
  let mesh: Mesh;
  let ordersApp: Listening;
  const extra: RunningProcess[] = [];
  const agents: Dispatcher[] = [];

  const ids = () => {
    if (mesh.identities === undefined) throw new Error('expected the mesh in mtls mode');
    return mesh.identities;
  };
  const files = (workload: Workload) => ({
    cert: readFileSync(join(ids().dir, workload, 'tls.crt'), 'utf8'),
    key: readFileSync(join(ids().dir, workload, 'tls.key'), 'utf8'),
  });
  /** A TLS client trusting the mesh bundle, presenting `identity` (or no certificate). */
  const client = (identity?: { cert: string; key: string }): Dispatcher => {
    const agent = new Agent({ connect: { ca: ids().bundle, ...(identity ?? {}) } });
    agents.push(agent);
    return agent;
  };
  const ordersInbound = (path = '/orders') => `https://127.0.0.1:${mesh.services.orders.inbound}${path}`;
  const replay = async (dispatcher: Dispatcher, headers: Record<string, string>) => {
    const response = await request(ordersInbound(), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: '{}',
      dispatcher,
    });
    const body = (await response.body.json()) as { code?: string };
    return { status: response.statusCode, code: body.code, challenge: response.headers['www-authenticate'] };
  };
  const decode = (token: string) =>
    JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString('utf8')) as Record<string, unknown>;
  const bearerSeenByOrders = (index: number): string => {
    const authorization = ordersApp.seen[index]?.headers.authorization;
    assert.ok(
      typeof authorization === 'string' && authorization.startsWith('Bearer '),
      'the orders app was given the token (forwardToken)',
    );
    return authorization.slice(7);
  };

  before(async () => {
    // The orders app: keeps every request it is given, then calls payments on through its sidecar, as the demo app does.
    ordersApp = await listen((req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      req.on('end', () => {
        const context = req.headers['baton-context'];
        void request(`http://127.0.0.1:${mesh.services.orders.outbound}/charges`, {
          method: 'POST',
          headers: {
            host: 'payments',
            'content-type': 'application/json',
            ...(typeof context === 'string' ? { 'baton-context': context } : {}),
          },
          body: '{}',
        }).then(
          async (downstream) => {
            const body = await downstream.body.text();
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end(
              JSON.stringify({
                service: 'orders',
                downstream: { status: downstream.statusCode, body: JSON.parse(body) as unknown },
              }),
            );
          },
          () => {
            res.writeHead(502);
            res.end();
          },
        );
      });
    });
    mesh = await startMesh({ forwardToken: ['orders'], apps: { orders: ordersApp.port } });
  });

  after(async () => {
    await Promise.all(extra.map((p) => p.stop()));
    await Promise.all(agents.map((a) => a.close()));
    await mesh?.stop();
    ordersApp?.server.close();
  });

  it("runs the honest chain over mTLS with every token bound to its caller's certificate", async () => {
    const honest = await postInbound(
      mesh.services.gateway.entry,
      '/checkout',
      `Bearer ${await mesh.userToken(DEMO_USER)}`,
    );
    assert.equal(honest.status, 200, JSON.stringify(honest.body));
    const view = honest.body as { downstream?: { status: number; body: { downstream?: { status: number } } } };
    assert.equal(view.downstream?.status, 200);
    assert.equal(view.downstream?.body.downstream?.status, 200, 'payments answered through orders');
    const claims = decode(bearerSeenByOrders(0));
    assert.equal(claims.client_id, 'gateway');
    assert.deepEqual(claims.cnf, { 'x5t#S256': certificateThumbprint(new X509Certificate(files('gateway').cert)) });
  });

  it("refuses a token stolen from the app when it is replayed with another workload's certificate, or with none", async () => {
    const stolen = bearerSeenByOrders(0);
    const hitsBefore = ordersApp.hits;

    const asPayments = await replay(client(files('payments')), { authorization: `Bearer ${stolen}` });
    assert.equal(asPayments.status, 401);
    assert.equal(asPayments.code, TokenCertificateMismatchError.code);
    assert.match(String(asPayments.challenge), /error="invalid_token"/);

    // A second certificate for gateway's own SPIFFE ID (another key, same CA): still not the certificate the token is bound to.
    const twin = await issueSvid(ids().ca, {
      spiffeId: ids().map.idOf('gateway'),
      ipAddresses: ['127.0.0.1'],
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3_600_000),
    });
    const asTwin = await replay(client({ cert: twin.certPem, key: twin.keyPem }), {
      authorization: `Bearer ${stolen}`,
    });
    assert.equal(asTwin.status, 401);
    assert.equal(asTwin.code, TokenCertificateMismatchError.code);

    // No client certificate at all: the inbound port requires one, so the handshake fails before a request is read.
    await assert.rejects(replay(client(), { authorization: `Bearer ${stolen}` }));
    assert.equal(ordersApp.hits, hitsBefore, 'no replay reached the app');
  });

  it('refuses a captured request replayed verbatim from another workload', async () => {
    const captured = ordersApp.seen[0];
    assert.ok(captured !== undefined);
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(captured.headers)) {
      if (typeof value === 'string' && !['host', 'connection', 'content-length', 'transfer-encoding'].includes(name))
        headers[name] = value;
    }
    const replayed = await replay(client(files('payments')), headers);
    assert.equal(replayed.status, 401);
    assert.equal(replayed.code, TokenCertificateMismatchError.code);
  });

  it("will not launder a stolen token through the STS with another client's certificate", async () => {
    const response = await request(`${mesh.stsUrl}/token`, {
      method: 'POST',
      dispatcher: client(files('payments')),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        client_id: 'payments',
        subject_token: bearerSeenByOrders(0),
        subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        audience: 'payments',
      }).toString(),
    });
    const body = (await response.body.json()) as { error?: string };
    assert.equal(response.statusCode, 400);
    assert.equal(body.error, 'invalid_request');
  });

  it('counts binding refusals and never writes a token to a log', async () => {
    const metrics = await (await request(`http://127.0.0.1:${mesh.services.orders.admin}/metrics`)).body.text();
    const refused = /baton_token_binding_refusals_total\{code="BATON_TOKEN_CERT_MISMATCH"\} (\d+)/.exec(metrics);
    assert.ok(refused !== null && Number(refused[1]) >= 3, metrics);
    assert.match(metrics, /baton_identity_state\{state="ready"\} 1/);
    assert.match(metrics, /baton_identity_expiry_timestamp_seconds [1-9]\d+/);
    const stolen = bearerSeenByOrders(0);
    await logLinesOut();
    for (const p of mesh.processes)
      assert.ok(!p.output().includes(stolen.split('.')[2] as string), `${p.name} logged a token`);
  });

  it('publishes the RFC 8705 metadata and refuses a certificate client that claims another client id', async () => {
    const metadata = (await (
      await request(`${mesh.stsUrl}/.well-known/oauth-authorization-server`, { dispatcher: client() })
    ).body.json()) as Record<string, unknown>;
    assert.equal(metadata.tls_client_certificate_bound_access_tokens, true);
    assert.ok((metadata.token_endpoint_auth_methods_supported as string[]).includes('tls_client_auth'));

    const token = (identity: Workload, clientId: string) =>
      request(`${mesh.stsUrl}/token`, {
        method: 'POST',
        dispatcher: client(files(identity)),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: clientId,
          audience: 'payments',
        }).toString(),
      });
    const impostor = await token('orders', 'payments');
    const refused = (await impostor.body.json()) as { error?: string; code?: string };
    assert.equal(impostor.statusCode, 401);
    assert.equal(refused.error, 'invalid_client');
    assert.equal(refused.code, InvalidClientError.code);
    // The same certificate with its own client id authenticates (the policy may still refuse the edge, but not the client).
    const own = await token('orders', 'orders');
    const ownBody = (await own.body.json()) as { error?: string };
    assert.notEqual(ownBody.error, 'invalid_client');
  });

  it('refuses expired and untrusted client certificates in the handshake', async () => {
    const expired = await issueSvid(ids().ca, {
      spiffeId: ids().map.idOf('gateway'),
      ipAddresses: ['127.0.0.1'],
      notBefore: new Date(Date.now() - 7_200_000),
      notAfter: new Date(Date.now() - 3_600_000),
    });
    const foreignCa = await createDevCa({
      trustDomain: DEMO_SPIFFE.trustDomain,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
    });
    const untrusted = await issueSvid(foreignCa, {
      spiffeId: ids().map.idOf('gateway'),
      ipAddresses: ['127.0.0.1'],
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3_600_000),
    });
    const stolen = bearerSeenByOrders(0);
    for (const svid of [expired, untrusted]) {
      await assert.rejects(
        replay(client({ cert: svid.certPem, key: svid.keyPem }), { authorization: `Bearer ${stolen}` }),
      );
      // At the STS, where certificates are optional, a presented one must still verify: the connection is cut.
      await assert.rejects(
        request(`${mesh.stsUrl}/token`, {
          method: 'POST',
          dispatcher: client({ cert: svid.certPem, key: svid.keyPem }),
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: 'grant_type=client_credentials&client_id=gateway&audience=orders',
        }).then((r) => r.body.text()),
      );
    }
  });

  it('refuses a client certificate from the bundle whose SPIFFE ID maps to no service', async () => {
    // Another shape: the template maps it to nothing, so the connection is nobody the policy knows.
    // (ns/elsewhere/sa/gateway would map: to gateway.elsewhere, a service of another namespace.)
    const stranger = await issueSvid(ids().ca, {
      spiffeId: spiffeId('spiffe://baton.demo/workloads/gateway'),
      ipAddresses: ['127.0.0.1'],
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3_600_000),
    });
    const refused = await replay(client({ cert: stranger.certPem, key: stranger.keyPem }), {
      authorization: `Bearer ${bearerSeenByOrders(0)}`,
    });
    assert.equal(refused.status, 403);
    assert.equal(refused.code, PeerUnmappedError.code);
  });

  it("refuses a sidecar holding another service's certificate, in both directions", async () => {
    // Outbound: gateway's sidecar calls "orders", whose server presents payments' certificate. Nothing is sent to it.
    const impostorServer = createTlsServer(
      { ...files('payments'), ca: ids().bundle, requestCert: true, rejectUnauthorized: false },
      (req, res) => {
        impostorHits++;
        req.resume();
        res.end('{}');
      },
    );
    let impostorHits = 0;
    await new Promise<void>((resolve) => impostorServer.listen(0, '127.0.0.1', resolve));
    const impostorPort = (impostorServer.address() as { port: number }).port;
    try {
      const gateway = await extraSidecar('gateway', 'gateway', { orders: `https://127.0.0.1:${impostorPort}` });
      const out = await request(`http://127.0.0.1:${gateway.outbound}/orders`, {
        method: 'POST',
        headers: {
          host: 'orders',
          authorization: `Bearer ${await mesh.userToken(DEMO_USER)}`,
          'content-type': 'application/json',
        },
        body: '{}',
      });
      const problem = (await out.body.json()) as { code?: string };
      assert.equal(out.statusCode, 502);
      assert.equal(problem.code, UpstreamIdentityMismatchError.code);
      assert.equal(impostorHits, 0, 'no request, so no token, reached the impostor');
    } finally {
      impostorServer.close();
    }

    // Inbound, at the STS: a sidecar configured as orders but holding payments' certificate gets no token to call anyone with.
    const fake = await extraSidecar('orders', 'payments', {});
    const call = await request(`http://127.0.0.1:${fake.outbound}/charges`, {
      method: 'POST',
      headers: {
        host: 'payments',
        authorization: `Bearer ${bearerSeenByOrders(0)}`,
        'content-type': 'application/json',
      },
      body: '{}',
    });
    const refusal = (await call.body.json()) as { code?: string; oauthError?: string };
    assert.equal(call.statusCode, 403);
    assert.equal(refusal.code, ExchangeRefusedError.code);
    assert.equal(refusal.oauthError, 'invalid_client');
  });

  it("loses no request while every party's certificate files rotate under load, and exchanges again for the new certificate", async () => {
    const user = `Bearer ${await mesh.userToken(DEMO_USER)}`;
    const warm = await postInbound(mesh.services.gateway.entry, '/checkout', user);
    assert.equal(warm.status, 200);
    const issuedBefore = issuedTo('gateway');
    const oldThumbprint = certificateThumbprint(new X509Certificate(files('gateway').cert));

    // Bounded load: 4 workers, until 60 requests are done or 30 s have passed, while the files are reissued.
    const statuses: number[] = [];
    const deadline = Date.now() + 30_000;
    let sent = 0;
    const worker = async () => {
      while (sent < 60 && Date.now() < deadline) {
        sent++;
        const response = await postInbound(mesh.services.gateway.entry, '/checkout', user);
        const view = response.body as { downstream?: { status: number; body: { downstream?: { status: number } } } };
        statuses.push(
          response.status === 200 && view.downstream?.status === 200 && view.downstream.body.downstream?.status === 200
            ? 200
            : response.status,
        );
      }
    };
    const load = Promise.all([worker(), worker(), worker(), worker()]);
    // Rotate once requests are flowing: some answered before, the rest during and after.
    await waitFor(async () => statuses.length >= 4, {
      what: 'requests answered before the rotation',
      timeoutMs: 10_000,
      intervalMs: 10,
    });
    const workloads: Workload[] = ['gateway', 'orders', 'payments', 'baton-sts', 'baton-policy-server'];
    await writeDevIdentities({
      dir: ids().dir,
      trustDomain: DEMO_SPIFFE.trustDomain,
      services: workloads.map((service) => ({ service, spiffeId: ids().map.idOf(service) })),
      validForMs: 24 * 3_600_000,
      layout: 'csi-driver-spiffe',
      now: new Date(),
      force: true,
    });
    await load;
    assert.ok(statuses.length >= 20, `only ${statuses.length} requests ran`);
    assert.deepEqual(
      statuses.filter((s) => s !== 200),
      [],
      'every request during the rotation succeeded end to end',
    );

    // Every party took the new files…
    for (const name of ['gateway-sidecar', 'orders-sidecar', 'payments-sidecar', 'sts', 'policy-server']) {
      await waitFor(async () => mesh.process(name).logs.some((l) => l.event === 'identity_rotated'), {
        timeoutMs: 10_000,
        what: `${name} rotated`,
      });
    }
    // …and gateway's next token is exchanged again, bound to its new certificate.
    const newThumbprint = certificateThumbprint(new X509Certificate(files('gateway').cert));
    assert.notEqual(newThumbprint, oldThumbprint);
    const seenBefore = ordersApp.seen.length;
    const after = await postInbound(mesh.services.gateway.entry, '/checkout', user);
    assert.equal(after.status, 200);
    const claims = decode(bearerSeenByOrders(seenBefore));
    assert.deepEqual(claims.cnf, { 'x5t#S256': newThumbprint });
    // The STS's log lines are buffered for up to 200 ms (src/telemetry/logger.ts).
    await waitFor(async () => issuedTo('gateway') > issuedBefore, {
      what: 'the STS minting a new token for gateway after the rotation',
      timeoutMs: 5_000,
    });
  });

  function issuedTo(clientId: string): number {
    return mesh.process('sts').logs.filter((l) => l.msg === 'token issued' && l.client === clientId).length;
  }

  /** One more sidecar process against the running mesh: `service` as configured, with `identity`'s certificate files. */
  async function extraSidecar(
    service: string,
    identity: Workload,
    upstreams: Record<string, string>,
  ): Promise<{ outbound: number }> {
    const [inbound, outbound, admin] = [await freePort(), await freePort(), await freePort()];
    const file = join(mesh.dir, `extra-${service}-${identity}.yaml`);
    writeFileSync(
      file,
      stringify({
        service,
        inbound: { port: inbound, app: 'http://127.0.0.1:9' },
        outbound: { port: outbound },
        admin: { port: admin },
        sts: { issuer: mesh.stsUrl, clientId: service },
        policy: { url: mesh.policyUrl, publicKey: join(mesh.dir, 'policy-signing.pub.pem') },
        upstreams,
        externalIssuers: [{ issuer: mesh.idpUrl, jwksUri: `${mesh.idpUrl}/jwks` }],
        transport: { mode: 'mtls' },
        identity: {
          certFile: join(ids().dir, identity, 'tls.crt'),
          keyFile: join(ids().dir, identity, 'tls.key'),
          bundleFile: join(ids().dir, identity, 'ca.crt'),
        },
        spiffe: DEMO_SPIFFE,
      }),
    );
    const sidecar = startBaton(['sidecar', '--config', file]);
    extra.push(sidecar);
    await waitFor(
      async () => {
        const response = await request(`http://127.0.0.1:${admin}/readyz`).catch(() => undefined);
        await response?.body.dump();
        return response?.statusCode === 200;
      },
      { timeoutMs: 30_000, what: `extra ${service} sidecar ready` },
    );
    return { outbound };
  }
});
