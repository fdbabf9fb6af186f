import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import Provider from 'oidc-provider';
import { TOKEN_EXCHANGE_GRANT, TokenType } from '../../src/core/token-types.ts';
import { freePort } from '../helpers/net.ts';
import { type RunningProcess, startBaton } from '../helpers/process.ts';
import { basic, type ConfigFile, SECRETS, writeStsConfig } from '../sts/helpers/sts-fixture.ts';

const SHOP_POLICY = fileURLToPath(new URL('../../examples/shop.callgraph.yaml', import.meta.url));
// The shop policy's gateway→orders edge with a service identity allowed: a client-credentials token carries no user.
const SERVICE_POLICY = join(mkdtempSync(join(tmpdir(), 'baton-op-')), 'callgraph.yaml');
writeFileSync(SERVICE_POLICY, readFileSync(SHOP_POLICY, 'utf8').replace('scopes: "orders:read or orders:write"', 'scopes: "orders:read or orders:write"\n          user: optional'));
const WEB_SECRET = 'web-client-secret-0123456789';

/**
 * panva's certified OpenID Provider, in this process, issuing RFC 9068
 * `at+jwt` access tokens for the gateway resource. It needs an interactive
 * login for a user token, so the subject here is a client_credentials
 * token: its `sub` is the client, so the STS reads it as a service
 * identity (RFC 9068 §2.2), not as a user.
 */
async function startOidcProvider(): Promise<{ issuer: string; accessToken(): Promise<string>; close(): Promise<void> }> {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const provider = new Provider(issuer, {
    scopes: ['orders:read', 'orders:write'],
    ttl: { ClientCredentials: 600 },
    clients: [{ client_id: 'web', client_secret: WEB_SECRET, grant_types: ['client_credentials'], redirect_uris: [], response_types: [], id_token_signed_response_alg: 'ES256', scope: 'orders:read orders:write' }],
    jwks: { keys: [{ ...(await exportJWK(privateKey)), kid: 'op-1', alg: 'ES256', use: 'sig' }] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => 'urn:baton:gateway',
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({ scope: 'orders:read orders:write', audience: 'gateway', accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } }),
      },
    },
  });
  const server = provider.listen(port, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  return {
    issuer,
    async accessToken() {
      const response = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic('web', WEB_SECRET) },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'orders:read', resource: 'urn:baton:gateway' }).toString(),
      });
      const body = (await response.json()) as { access_token?: string; error?: string; error_description?: string };
      if (body.access_token === undefined) throw new Error(`oidc-provider refused: ${body.error}: ${body.error_description}`);
      return body.access_token;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('baton sts with tokens from oidc-provider (a certified OpenID Provider)', () => {
  let op: Awaited<ReturnType<typeof startOidcProvider>>;
  let configFile: ConfigFile;
  let sts: RunningProcess;
  let url: string;

  before(async () => {
    op = await startOidcProvider();
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    configFile = writeStsConfig({
      issuer: url,
      port,
      policy: { file: SERVICE_POLICY },
      clients: [{ id: 'gateway', secret: SECRETS.gateway }],
      // Keys found through discovery (RFC 8414, then OpenID Connect Discovery).
      externalIssuers: [{ issuer: op.issuer, discovery: true, audience: 'gateway' }],
    });
    sts = startBaton(['sts', '--config', configFile.file]);
    await sts.waitForOutput(/"msg":"sts listening"/);
  });
  after(async () => {
    await sts.stop();
    await op.close();
    configFile.remove();
  });

  it('accepts its at+jwt at the entrypoint as a service identity, exchanges it, and the result verifies against /jwks', async () => {
    const subjectToken = await op.accessToken();
    assert.equal(decodeProtectedHeader(subjectToken).typ, 'at+jwt');
    const response = await fetch(`${url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic('gateway', SECRETS.gateway) },
      body: new URLSearchParams({ grant_type: TOKEN_EXCHANGE_GRANT, subject_token: subjectToken, subject_token_type: TokenType.accessToken, audience: 'orders' }).toString(),
    });
    const body = (await response.json()) as Record<string, unknown>;
    assert.equal(response.status, 200, JSON.stringify(body));
    const { payload, protectedHeader } = await jwtVerify(body.access_token as string, createRemoteJWKSet(new URL(`${url}/jwks`)), { issuer: url, audience: 'orders' });
    assert.equal(protectedHeader.typ, 'at+jwt');
    assert.equal(payload.sub, decodeJwt(subjectToken).sub);
    assert.equal(payload.sub_type, 'service');
    assert.deepEqual(payload.sub_id, { format: 'iss_sub', iss: op.issuer, sub: payload.sub });
    assert.equal(payload.client_id, 'gateway');
    assert.deepEqual(payload.act, { sub: 'gateway' });
    assert.equal(payload.scope, 'orders:read');
    assert.equal(body.scope, 'orders:read');
  });
});
