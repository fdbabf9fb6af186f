import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { TOKEN_EXCHANGE_GRANT, TokenType } from '../../src/core/token-types.ts';
import { freePort } from '../helpers/net.ts';
import { type OidcProvider, startOidcProvider } from '../helpers/oidc-provider.ts';
import { type RunningProcess, startBaton } from '../helpers/process.ts';
import { basic, type ConfigFile, SECRETS, writeStsConfig } from '../helpers/sts.ts';

const SHOP_POLICY = fileURLToPath(new URL('../../examples/shop.callgraph.yaml', import.meta.url));
// The shop policy's gateway→orders edge with a service identity allowed: a client-credentials token carries no user.
const POLICY_DIR = mkdtempSync(join(tmpdir(), 'baton-op-'));
const SERVICE_POLICY = join(POLICY_DIR, 'callgraph.yaml');
writeFileSync(
  SERVICE_POLICY,
  readFileSync(SHOP_POLICY, 'utf8').replace(
    'scopes: "orders:read or orders:write"',
    'scopes: "orders:read or orders:write"\n          user: optional',
  ),
);

describe('baton sts with tokens from oidc-provider (a certified OpenID Provider)', () => {
  // panva's certified OpenID Provider issuing RFC 9068 at+jwt access tokens by client credentials: their sub is the client,
  // so the STS reads them as a service identity (RFC 9068 §2.2), not as a user.
  let op: OidcProvider;
  let configFile: ConfigFile;
  let sts: RunningProcess;
  let url: string;

  before(async () => {
    op = await startOidcProvider({ format: 'jwt' });
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    configFile = writeStsConfig({
      issuer: url,
      port,
      policy: { file: SERVICE_POLICY },
      transport: { mode: 'plaintext' },
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
    rmSync(POLICY_DIR, { recursive: true, force: true });
  });

  it('accepts its at+jwt at the entrypoint as a service identity, exchanges it, and the result verifies against /jwks', async () => {
    const subjectToken = await op.accessToken('orders:read');
    assert.equal(decodeProtectedHeader(subjectToken).typ, 'at+jwt');
    const response = await fetch(`${url}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: basic('gateway', SECRETS.gateway),
      },
      body: new URLSearchParams({
        grant_type: TOKEN_EXCHANGE_GRANT,
        subject_token: subjectToken,
        subject_token_type: TokenType.accessToken,
        audience: 'orders',
      }).toString(),
    });
    const body = (await response.json()) as Record<string, unknown>;
    assert.equal(response.status, 200, JSON.stringify(body));
    const { payload, protectedHeader } = await jwtVerify(
      body.access_token as string,
      createRemoteJWKSet(new URL(`${url}/jwks`)),
      { issuer: url, audience: 'orders' },
    );
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
