/**
 * `inbound.clientCertificate: optional`, end to end with real processes:
 * the demo mesh in mtls mode with two sidecars whose TLS inbound port lets
 * a caller without a certificate finish the handshake. That opens the port
 * to external-IdP tokens from an ingress, and to nothing else: a mesh token
 * still needs the certificate it is bound to, and a certificate that is
 * presented must still verify against the bundle and map to a service.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent, type Dispatcher, request } from 'undici';
import { DEMO_SPIFFE, type Mesh, startMesh } from '../../src/demo/mesh.ts';
import { DEMO_USER } from '../../src/demo/scenario.ts';
import { createDevCa, issueSvid } from '../../src/identity/dev-ca.ts';
import { type SpiffeId, spiffeId } from '../../src/identity/spiffe-id.ts';
import {
  PeerUnmappedError,
  TokenCertificateMismatchError,
  TokenCertificateRequiredError,
} from '../../src/sidecar/errors.ts';
import { type Listening, listen } from '../helpers/http-server.ts';

describe('inbound.clientCertificate: optional (real sidecars over TLS)', { timeout: 180_000 }, () => {
  let mesh: Mesh;
  let ordersApp: Listening;
  const agents: Dispatcher[] = [];

  const ids = () => {
    if (mesh.identities === undefined) throw new Error('expected the mesh in mtls mode');
    return mesh.identities;
  };
  /** A TLS client trusting the mesh bundle, presenting `identity`, or no certificate at all. */
  const client = (identity?: { cert: string; key: string }): Dispatcher => {
    const agent = new Agent({ connect: { ca: ids().bundle, ...(identity ?? {}) } });
    agents.push(agent);
    return agent;
  };
  const call = async (service: 'gateway' | 'orders', path: string, authorization: string, dispatcher: Dispatcher) => {
    const response = await request(`https://127.0.0.1:${mesh.services[service].inbound}${path}`, {
      method: 'POST',
      headers: { authorization, 'content-type': 'application/json' },
      body: '{}',
      dispatcher,
    });
    const body = (await response.body.json()) as { code?: string };
    return { status: response.statusCode, code: body.code };
  };
  const svid = (ca: Parameters<typeof issueSvid>[0], spiffeId: SpiffeId) =>
    issueSvid(ca, {
      spiffeId,
      ipAddresses: ['127.0.0.1'],
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3_600_000),
    });

  before(async () => {
    // The orders app keeps what it is given (forwardToken), so the test holds a real mesh token minted for orders.
    ordersApp = await listen();
    mesh = await startMesh({
      forwardToken: ['orders'],
      apps: { orders: ordersApp.port },
      optionalClientCertificate: ['gateway', 'orders'],
    });
  });

  after(async () => {
    await Promise.all(agents.map((a) => a.close()));
    await mesh?.stop();
    ordersApp?.server.close();
  });

  it('takes an external user token over TLS from a caller with no certificate, as an ingress is', async () => {
    const answer = await call('gateway', '/checkout', `Bearer ${await mesh.userToken(DEMO_USER)}`, client());
    assert.equal(answer.status, 200);
    assert.equal(ordersApp.hits, 1, 'the chain went on to orders over mTLS');
  });

  it('still refuses a mesh token without the certificate it is bound to, before the app sees it', async () => {
    const authorization = ordersApp.seen[0]?.headers.authorization;
    assert.ok(
      typeof authorization === 'string' && authorization.startsWith('Bearer '),
      'orders was given the token it was called with',
    );
    const hits = ordersApp.hits;
    const none = await call('orders', '/orders', authorization, client());
    assert.equal(none.status, 401);
    assert.equal(none.code, TokenCertificateRequiredError.code);
    const payments = {
      cert: readFileSync(join(ids().dir, 'payments', 'tls.crt'), 'utf8'),
      key: readFileSync(join(ids().dir, 'payments', 'tls.key'), 'utf8'),
    };
    const other = await call('orders', '/orders', authorization, client(payments));
    assert.equal(other.status, 401);
    assert.equal(other.code, TokenCertificateMismatchError.code);
    assert.equal(ordersApp.hits, hits, 'no refused request reached the app');
  });

  it('cuts a connection whose certificate does not verify against the bundle, and refuses one that maps to no service', async () => {
    const foreignCa = await createDevCa({
      trustDomain: DEMO_SPIFFE.trustDomain,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
    });
    const untrusted = await svid(foreignCa, ids().map.idOf('gateway'));
    const token = `Bearer ${await mesh.userToken(DEMO_USER)}`;
    await assert.rejects(
      call('gateway', '/checkout', token, client({ cert: untrusted.certPem, key: untrusted.keyPem })),
    );
    // Another shape of ID: the rule maps it to nothing (ns/elsewhere/sa/gateway would name gateway.elsewhere).
    const stranger = await svid(ids().ca, spiffeId('spiffe://baton.demo/workloads/gateway'));
    const unmapped = await call(
      'gateway',
      '/checkout',
      token,
      client({ cert: stranger.certPem, key: stranger.keyPem }),
    );
    assert.equal(unmapped.status, 403);
    assert.equal(unmapped.code, PeerUnmappedError.code);
  });
});
