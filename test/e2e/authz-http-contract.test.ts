/**
 * `baton authz`'s HTTP check port as Envoy's HTTP ext_authz service and
 * nginx's auth_request use it (docs/authz.md, "The HTTP check"), field by
 * field, against real processes: the demo mesh's control plane and the
 * gateway's and orders' authorizers. Envoy's HTTP service: the original
 * method, `path_prefix` + the original path, the allowed headers; 200 with
 * the headers to pass upstream (`allowed_upstream_headers`) and
 * `x-envoy-auth-headers-to-remove`, anything else denies with that status.
 * nginx: the same request from `proxy_pass …$request_uri` with
 * `proxy_method $request_method`; `auth_request_set` reads the answer's
 * fields, `proxy_cache` its Cache-Control.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { Agent, Client, type Dispatcher, request } from 'undici';
import { type Mesh, startMesh } from '../../src/demo/mesh.ts';
import { DEMO_USER } from '../../src/demo/scenario.ts';
import { certificateThumbprint } from '../../src/identity/svid.ts';
import { type AuthzProcess, startAuthz } from '../helpers/authz-mesh.ts';
import { waitFor } from '../helpers/net.ts';

type Answer = Dispatcher.ResponseData & { text: string };

describe('baton authz: the HTTP check (Envoy HTTP ext_authz service, nginx auth_request)', { timeout: 180_000 }, () => {
  let mesh: Mesh;
  let gateway: AuthzProcess;
  let orders: AuthzProcess;

  before(async () => {
    mesh = await startMesh({ dataPlane: 'none' });
    [gateway, orders] = await Promise.all([
      startAuthz(mesh, 'gateway', { config: { http: { cacheMaxAgeSeconds: 30 } } }),
      startAuthz(mesh, 'orders'),
    ]);
  });
  after(async () => {
    await Promise.all([gateway?.stop(), orders?.stop()]);
    await mesh?.stop();
  });

  /** The path as given, byte for byte: a URL parser would resolve its dot segments first. */
  async function ask(at: AuthzProcess, method: string, path: string, headers: Record<string, string>): Promise<Answer> {
    const client = new Client(`http://127.0.0.1:${at.http}`);
    try {
      const response = await client.request({ method: method as Dispatcher.HttpMethod, path, headers });
      return Object.assign(response, { text: await response.body.text() });
    } finally {
      await client.close();
    }
  }

  async function userToken(fields: { sub?: string; ttl?: number } = {}): Promise<string> {
    const form = new URLSearchParams({
      sub: fields.sub ?? 'alice',
      scope: DEMO_USER.scope,
      acr: DEMO_USER.acr,
      aud: 'gateway',
      ...(fields.ttl === undefined ? {} : { ttl: String(fields.ttl) }),
    });
    const response = await request(`${mesh.idpUrl}/dev/token`, {
      method: 'POST',
      body: form.toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    return ((await response.body.json()) as { access_token: string }).access_token;
  }

  it('reads the checked request as <pathPrefix>/inbound + its path and query, with its method and fields; answers 200 with the identity fields, x-envoy-auth-headers-to-remove, and a Cache-Control a proxy cache may follow', async () => {
    const answer = await ask(gateway, 'POST', '/baton-authz/inbound/checkout?basket=7', {
      authorization: `Bearer ${await userToken({ sub: 'kate' })}`,
      host: 'gateway',
    });
    assert.equal(answer.statusCode, 200, answer.text);
    assert.equal(answer.headers['baton-subject'], 'kate');
    assert.equal(answer.headers['baton-caller'], 'external');
    assert.match(String(answer.headers['baton-context']), /^bctx_/);
    const removed = String(answer.headers['x-envoy-auth-headers-to-remove']).split(', ');
    assert.ok(removed.includes('authorization') && removed.includes('baton-chain'), removed.join(', '));
    assert.equal(answer.headers['cache-control'], 'max-age=30');
    assert.equal(answer.headers.vary, 'authorization, baton-context, x-forwarded-client-cert');
    assert.equal(answer.text, '');
    await waitFor(async () => gateway.logs().find((l) => l.event === 'decision' && l.subject === 'kate'), {
      what: "kate's decision line",
    }).then((line) => {
      assert.equal(line.method, 'POST');
      assert.equal(line.path, '/checkout', 'the decision is on the path, its query cut');
    });
  });

  it("never tells a cache to keep an answer past the token's exp", async () => {
    const answer = await ask(gateway, 'GET', '/baton-authz/inbound/checkout', {
      authorization: `Bearer ${await userToken({ ttl: 4 })}`,
      host: 'gateway',
    });
    assert.equal(answer.statusCode, 200, answer.text);
    const maxAge = Number(/^max-age=(\d+)$/.exec(String(answer.headers['cache-control']))?.[1]);
    assert.ok(maxAge >= 0 && maxAge <= 4, `max-age ${maxAge} within the token's 4 s`);
  });

  it("refuses with the sidecar's status and problem document, Cache-Control no-store, and the document again in baton-problem for nginx", async () => {
    const answer = await ask(gateway, 'GET', '/baton-authz/inbound/checkout', { host: 'gateway' });
    assert.equal(answer.statusCode, 401);
    assert.equal(answer.headers['www-authenticate'], 'Bearer realm="baton"');
    assert.equal(answer.headers['cache-control'], 'no-store');
    assert.equal(answer.headers['content-type'], 'application/problem+json');
    assert.deepEqual(JSON.parse(String(answer.headers['baton-problem'])), JSON.parse(answer.text));
    assert.equal((JSON.parse(answer.text) as { code: string }).code, 'BATON_UNAUTHENTICATED');
  });

  it('refuses what is not a check: another path (404), a prefix not followed by the original path (400), an ambiguous original path (400)', async () => {
    const token = await userToken();
    const elsewhere = await ask(gateway, 'GET', '/checkout', { authorization: `Bearer ${token}`, host: 'gateway' });
    assert.equal(elsewhere.statusCode, 404);
    const glued = await ask(gateway, 'GET', '/baton-authz/inboundcheckout', {
      authorization: `Bearer ${token}`,
      host: 'gateway',
    });
    assert.equal(glued.statusCode, 400);
    assert.equal((JSON.parse(glued.text) as { code: string }).code, 'BATON_AUTHZ_MALFORMED_CHECK');
    // Matched as bytes: the dot segment is the checked request's, and the core refuses it.
    const dotted = await ask(gateway, 'GET', '/baton-authz/inbound/../outbound/orders', {
      authorization: `Bearer ${token}`,
      host: 'gateway',
    });
    assert.equal(dotted.statusCode, 400);
    assert.deepEqual(JSON.parse(dotted.text) as { code: string; reason: string }, {
      ...(JSON.parse(dotted.text) as object),
      code: 'BATON_BAD_REQUEST',
      reason: 'ambiguous-path',
    });
  });

  it('refuses a baton-* field baton does not write: over HTTP a proxy could not be told to drop it', async () => {
    const answer = await ask(gateway, 'GET', '/baton-authz/inbound/checkout', {
      authorization: `Bearer ${await userToken()}`,
      host: 'gateway',
      'baton-admin': 'yes',
    });
    assert.equal(answer.statusCode, 400);
    assert.equal((JSON.parse(answer.text) as { reason: string }).reason, 'baton-field');
  });

  it("answers an outbound check (<pathPrefix>/outbound, Host naming the target) with Authorization: Bearer for the target and baton-context to remove, its max-age within the exchanged token's life", async () => {
    const entered = await ask(gateway, 'POST', '/baton-authz/inbound/checkout', {
      authorization: `Bearer ${await userToken()}`,
      host: 'gateway',
    });
    const answer = await ask(gateway, 'POST', '/baton-authz/outbound/orders', {
      'baton-context': String(entered.headers['baton-context']),
      host: 'orders',
    });
    assert.equal(answer.statusCode, 200, answer.text);
    const token = String(answer.headers.authorization).replace(/^Bearer /, '');
    const claims = decodeJwt(token);
    assert.equal(claims.aud, 'orders');
    assert.equal(answer.headers['baton-request'], entered.headers['baton-request']);
    assert.ok(String(answer.headers['x-envoy-auth-headers-to-remove']).split(', ').includes('baton-context'));
    const maxAge = Number(/^max-age=(\d+)$/.exec(String(answer.headers['cache-control']))?.[1]);
    assert.ok(maxAge > 0 && maxAge <= (claims.exp as number) - Date.now() / 1000, `max-age ${maxAge}`);
  });

  it('serves the same check on a Unix domain socket (http.socket, nginx: server unix:PATH), replacing a stale socket a previous process left', async () => {
    const path = join(mesh.dir, 'authz.sock');
    for (let i = 0; i < 2; i++) {
      const onSocket = await startAuthz(mesh, 'gateway', {
        config: { grpc: { enabled: false }, http: { socket: path } },
      });
      const agent = new Agent({ connect: { socketPath: path } });
      try {
        const answer = await request('http://localhost/baton-authz/inbound/checkout', {
          method: 'POST',
          headers: { authorization: `Bearer ${await userToken({ sub: 'liam' })}`, host: 'gateway' },
          dispatcher: agent,
        });
        assert.equal(answer.statusCode, 200, await answer.body.text());
        assert.equal(answer.headers['baton-subject'], 'liam');
      } finally {
        await agent.close();
        // SIGKILL the first time: its socket file stays behind for the second to replace.
        await onSocket.process.stop(i === 0 ? 'SIGKILL' : 'SIGTERM');
      }
    }
  });

  it('reads the peer from the last x-forwarded-client-cert element: its certificate (Cert, as nginx writes it) or its URI and Hash (as Envoy writes them)', async () => {
    const ids = mesh.identities!;
    const entered = await ask(gateway, 'POST', '/baton-authz/inbound/checkout', {
      authorization: `Bearer ${await userToken()}`,
      host: 'gateway',
    });
    const out = await ask(gateway, 'GET', '/baton-authz/outbound/orders', {
      'baton-context': String(entered.headers['baton-context']),
      host: 'orders',
    });
    const token = String(out.headers.authorization).replace(/^Bearer /, '');
    const pem = readFileSync(join(ids.dir, 'gateway', 'tls.crt'), 'utf8');
    const hash = Buffer.from(certificateThumbprint(new X509Certificate(pem)), 'base64url').toString('hex');
    const asNginx = await ask(orders, 'GET', '/baton-authz/inbound/orders', {
      authorization: `Bearer ${token}`,
      host: 'orders',
      'x-forwarded-client-cert': `Cert="${encodeURIComponent(pem)}"`,
    });
    assert.equal(asNginx.statusCode, 200, asNginx.text);
    assert.equal(asNginx.headers['baton-caller'], 'gateway');
    const asEnvoy = await ask(orders, 'GET', '/baton-authz/inbound/orders', {
      authorization: `Bearer ${token}`,
      host: 'orders',
      'x-forwarded-client-cert': `URI=${ids.map.idOf('payments')};Hash=${'0'.repeat(64)},By=${ids.map.idOf('orders')};Hash=${hash};URI=${ids.map.idOf('gateway')}`,
    });
    assert.equal(asEnvoy.statusCode, 200, asEnvoy.text);
    const otherHash = await ask(orders, 'GET', '/baton-authz/inbound/orders', {
      authorization: `Bearer ${token}`,
      host: 'orders',
      'x-forwarded-client-cert': `Hash=${'0'.repeat(64)};URI=${ids.map.idOf('gateway')}`,
    });
    assert.equal(otherHash.statusCode, 401);
    assert.equal((JSON.parse(otherHash.text) as { code: string }).code, 'BATON_TOKEN_CERT_MISMATCH');

    // inbound.peerCertificate: ignore (Istio, whose proxies present certificates of their own): the principal alone counts.
    const istio = await startAuthz(mesh, 'orders', { config: { inbound: { peerCertificate: 'ignore' } } });
    try {
      const ownHash = await ask(istio, 'GET', '/baton-authz/inbound/orders', {
        authorization: `Bearer ${token}`,
        host: 'orders',
        'x-forwarded-client-cert': `By=${ids.map.idOf('orders')};Hash=${'0'.repeat(64)};URI=${ids.map.idOf('gateway')}`,
      });
      assert.equal(ownHash.statusCode, 200, ownHash.text);
      const otherWorkload = await ask(istio, 'GET', '/baton-authz/inbound/orders', {
        authorization: `Bearer ${token}`,
        host: 'orders',
        'x-forwarded-client-cert': `Hash=${hash};URI=${ids.map.idOf('payments')}`,
      });
      assert.equal(otherWorkload.statusCode, 401);
      assert.equal((JSON.parse(otherWorkload.text) as { code: string }).code, 'BATON_TOKEN_CALLER_MISMATCH');
    } finally {
      await istio.stop();
    }
  });
});
