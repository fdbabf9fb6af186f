/**
 * The mesh client (sidecars and the STS calling the STS, JWKS, the policy
 * server and upstreams over mTLS): a server is trusted only with the
 * workload certificate of the SPIFFE ID declared for its origin, checked in
 * the handshake, before a request or a token is written.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttpsServer, type Server } from 'node:https';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { request } from 'undici';
import { createMeshClient, type MeshClient } from '../../src/identity/mesh-client.ts';
import { createWorkloadIdentity, readSvidFiles, type WorkloadIdentity } from '../../src/identity/workload-identity.ts';
import { makeTestIdentities, type TestIdentities } from '../helpers/identities.ts';

describe('mesh client', () => {
  let ids: TestIdentities;
  let identity: WorkloadIdentity;
  let mesh: MeshClient;
  const servers: Server[] = [];
  let requestsSeen = 0;

  /** An HTTPS server presenting `cert`, asking for the client's certificate as a sidecar does. */
  async function serve(cert: string, key: string): Promise<string> {
    const server = createHttpsServer(
      { cert, key, ca: ids.ca.certPem, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' },
      (req, res) => {
        requestsSeen++;
        req.resume();
        res.end('{"keys":[]}');
      },
    );
    server.on('tlsClientError', () => {});
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    servers.push(server);
    return `https://127.0.0.1:${(server.address() as { port: number }).port}`;
  }

  before(async () => {
    ids = await makeTestIdentities(['orders', 'baton-sts']);
    identity = createWorkloadIdentity({
      ...ids.files('orders'),
      pollIntervalMs: 60_000,
      nearExpiryFraction: 1 / 6,
      logger: pino({ level: 'silent' }),
      now: Date.now,
    });
    mesh = createMeshClient({ identity, logger: pino({ level: 'silent' }) });
  });
  after(async () => {
    await mesh.close();
    identity.close();
    for (const server of servers) {
      server.closeAllConnections();
      server.close();
    }
    ids.cleanup();
  });

  it('reaches a server presenting the workload certificate declared for its origin', async () => {
    const sts = readSvidFiles(ids.files('baton-sts'));
    const origin = await serve(sts.cert, sts.key);
    mesh.expect(origin, ids.map.idOf('baton-sts'));
    const response = await request(`${origin}/jwks`, { dispatcher: mesh.dispatcher });
    assert.equal(response.statusCode, 200);
    await response.body.dump();
  });

  it('refuses a server presenting a CA certificate from the bundle that carries the declared SPIFFE ID, before sending anything (X509-SVID §4.1)', async () => {
    const signing = await ids.issueSigning(ids.map.idOf('baton-sts'));
    const origin = await serve(signing.certPem, signing.keyPem);
    mesh.expect(origin, ids.map.idOf('baton-sts'));
    const before = requestsSeen;
    const failure = await request(`${origin}/token`, {
      method: 'POST',
      body: 'subject_token=a-token',
      dispatcher: mesh.dispatcher,
    }).then(
      () => undefined,
      (error: unknown) => error as Error & { code?: string; cause?: { code?: string } },
    );
    assert.ok(failure !== undefined, 'the request was refused');
    assert.equal(failure.code ?? failure.cause?.code, 'BATON_UPSTREAM_IDENTITY_MISMATCH');
    assert.equal(requestsSeen, before, 'the impostor never saw a request');
  });
});
