/**
 * What docs/identity-providers.md promises a user: bring your own identity
 * provider to the demo mesh (`baton demo --issuers FILE`), send its token to
 * the entrypoint, and see your user, with your IdP named, at the last hop.
 * The IdP here is Keycloak-shaped (realm path, typ JWT, aud array, azp) and
 * found by discovery; the mesh is the demo's own processes.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { startMesh, type Mesh } from '../../src/demo/mesh.ts';
import { hops } from '../../src/demo/scenario.ts';
import { closeServer, type Listening, listen } from '../helpers/http-server.ts';
import { createSigner, nowSec, type TestSigner } from '../helpers/token.ts';

const OPEN_POLICY = `
apiVersion: baton.dev/v1alpha1
kind: CallGraph
metadata: { name: bring-your-idp }
spec:
  services:
    gateway: { entrypoint: true }
    orders: { accepts: [{ from: gateway }] }
    payments: { accepts: [{ from: orders, origins: [gateway] }] }
`;

describe('the demo mesh with your own identity provider', { timeout: 90_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-demo-idp-'));
  let idp: Listening;
  let signer: TestSigner;
  let issuer: string;
  let mesh: Mesh;

  before(async () => {
    signer = await createSigner('kc-demo', 'RS256');
    idp = await listen((req, res) => {
      req.resume();
      res.writeHead(req.url?.endsWith('/.well-known/openid-configuration') || req.url?.endsWith('/certs') ? 200 : 404, {
        'content-type': 'application/json',
      });
      res.end(
        req.url?.endsWith('/certs')
          ? JSON.stringify({ keys: [signer.publicJwk] })
          : JSON.stringify({ issuer, jwks_uri: `${issuer}/protocol/openid-connect/certs` }),
      );
    });
    issuer = `${idp.url}/realms/shop`;
    writeFileSync(join(dir, 'policy.yaml'), OPEN_POLICY);
    mesh = await startMesh({
      policyFile: join(dir, 'policy.yaml'),
      externalIssuers: [{ issuer, profile: 'keycloak' }],
    });
  });
  after(async () => {
    await mesh?.stop();
    await closeServer(idp.server);
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows your user, with your IdP named, at the last hop', async () => {
    const token = await signer.sign(
      {
        iss: issuer,
        sub: 'd1f0c2aa-user',
        aud: ['gateway', 'account'],
        typ: 'Bearer',
        azp: 'web',
        scope: 'openid',
        iat: nowSec(),
        exp: nowSec() + 300,
      },
      { typ: 'JWT' },
    );
    const r = await request(`http://127.0.0.1:${mesh.services.gateway.entry}/checkout`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    });
    const body = (await r.body.json()) as unknown;
    assert.equal(r.statusCode, 200, JSON.stringify(body));
    const seen = hops(body);
    assert.deepEqual(
      seen.map((h) => h.service),
      ['gateway', 'orders', 'payments'],
    );
    const last = seen.at(-1);
    assert.equal(last?.subject, 'd1f0c2aa-user');
    assert.equal(last?.subjectIssuer, issuer);
    assert.equal(last?.subjectType, 'user');
  });
});
