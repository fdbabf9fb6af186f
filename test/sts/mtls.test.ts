/**
 * The STS's token endpoint over real mutual TLS: RFC 8705 tls_client_auth
 * takes the client certificate as the client's credential, so what counts
 * as a client certificate is a security boundary. A CA certificate from the
 * bundle that carries a workload's SPIFFE ID is not that workload
 * (X509-SVID §4.1), though OpenSSL completes the handshake with it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { Agent, request } from 'undici';
import { createServiceMap } from '../../src/identity/service-map.ts';
import { createWorkloadIdentity, readSvidFiles } from '../../src/identity/workload-identity.ts';
import { InvalidClientError } from '../../src/sts/errors.ts';
import { makeTestIdentities, type TestIdentities } from '../helpers/identities.ts';
import { type InProcessSts, startInProcessSts } from '../helpers/sts-in-process.ts';
import { baseConfig, type ConfigFile, writeStsConfig } from '../helpers/sts.ts';

describe('STS token endpoint over mTLS', () => {
  let ids: TestIdentities;
  let configFile: ConfigFile;
  let sts: InProcessSts;
  let url: string;
  const agents: Agent[] = [];

  before(async () => {
    ids = await makeTestIdentities(['baton-sts', 'billing-job']);
    configFile = writeStsConfig({
      ...baseConfig({ issuer: 'https://sts.test' }),
      port: 0,
      transport: { mode: 'mtls' },
      spiffe: { trustDomain: 'baton.test', namespace: 'test' },
      identity: ids.files('baton-sts'),
      clients: [{ id: 'billing-job', tlsClientAuth: true, scopes: ['orders:read'] }],
    });
    const identity = createWorkloadIdentity({
      ...ids.files('baton-sts'),
      pollIntervalMs: 60_000,
      nearExpiryFraction: 1 / 6,
      logger: pino({ level: 'silent' }),
      now: Date.now,
    });
    sts = await startInProcessSts(configFile.config, {
      mesh: { identity, map: createServiceMap(configFile.config.spiffe) },
    });
    // listen() names the bound address with the scheme it speaks: https in mtls mode.
    url = await sts.server.listen();
    assert.match(url, /^https:\/\/127\.0\.0\.1:\d+$/);
    after(() => identity.close());
  });
  after(async () => {
    await Promise.all(agents.map((agent) => agent.close()));
    await sts.close();
    configFile.remove();
    ids.cleanup();
  });

  async function clientCredentials(
    cert: string,
    key: string,
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    // The client checks the STS's SPIFFE ID as a sidecar would; what is under test is the STS's view of the client.
    const agent = new Agent({ connect: { ca: ids.ca.certPem, cert, key, checkServerIdentity: () => undefined } });
    agents.push(agent);
    const response = await request(`${url}/token`, {
      method: 'POST',
      dispatcher: agent,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials&client_id=billing-job&audience=orders',
    });
    return { status: response.statusCode, body: (await response.body.json()) as Record<string, unknown> };
  }

  it('issues a token to a client authenticated by its workload certificate', async () => {
    const own = readSvidFiles(ids.files('billing-job'));
    const answer = await clientCredentials(own.cert, own.key);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(typeof answer.body.access_token, 'string');
  });

  it("refuses a CA certificate from the bundle that carries the client's SPIFFE ID, as invalid_client", async () => {
    const signing = await ids.issueSigning(ids.map.idOf('billing-job'));
    const answer = await clientCredentials(signing.certPem, signing.keyPem);
    assert.equal(answer.status, 401);
    assert.equal(answer.body.error, 'invalid_client');
    assert.match(String(answer.body.error_uri), new RegExp(InvalidClientError.code.toLowerCase()));
    assert.equal(answer.body.access_token, undefined);
  });
});
