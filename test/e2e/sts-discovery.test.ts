/**
 * The STS is discovered the way OAuth clients discover an authorization
 * server, also when its issuer has a path: a real `baton sts` process with
 * issuer `http://127.0.0.1:<port>/mesh-a`, found by RFC 8414 §3 (the
 * well-known segment inserted before the path, §3.1; the metadata's issuer
 * identical to the one asked for, §3.3) and by OpenID Connect Discovery's
 * name (appended to the issuer, §4), with undici as the client: openid-client
 * is not among this project's dependencies. A token is then got at the
 * discovered token endpoint and verified with the discovered keys, and a
 * sidecar configured with only the issuer becomes ready.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { request } from 'undici';
import { stringify } from 'yaml';
import { FIXTURE_POLICY, SECRETS, baseConfig, basic } from '../helpers/sts.ts';
import { freePort, waitFor } from '../helpers/net.ts';
import { type RunningProcess, startBaton } from '../helpers/process.ts';

/** RFC 8414 §3.1: `/.well-known/oauth-authorization-server` between the host and the issuer's path, a terminating "/" removed. */
function authorizationServerMetadataUrl(issuer: string): string {
  const url = new URL(issuer);
  return `${url.origin}/.well-known/oauth-authorization-server${url.pathname.replace(/\/$/, '')}`;
}

/** OpenID Connect Discovery 1.0 §4: `/.well-known/openid-configuration` appended to the issuer. */
function openidConfigurationUrl(issuer: string): string {
  return `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
}

async function getJson(url: string): Promise<{ status: number; contentType: string; body: Record<string, unknown> }> {
  const response = await request(url);
  const text = await response.body.text();
  return {
    status: response.statusCode,
    contentType: String(response.headers['content-type']),
    body: response.statusCode === 200 ? (JSON.parse(text) as Record<string, unknown>) : {},
  };
}

describe('STS discovery as OAuth clients do it, with an issuer that has a path', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-sts-discovery-'));
  const running: RunningProcess[] = [];
  let issuer: string;
  let origin: string;

  before(async () => {
    const port = await freePort();
    origin = `http://127.0.0.1:${port}`;
    issuer = `${origin}/mesh-a`;
    writeFileSync(join(dir, 'sts.yaml'), stringify({ ...baseConfig({ issuer }), port, logLevel: 'info' }));
    const sts = startBaton(['sts', '--config', join(dir, 'sts.yaml')]);
    running.push(sts);
    await sts.waitForOutput(/"msg":"sts listening"/, 30_000);
  });
  after(async () => {
    await Promise.all(running.map((p) => p.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves RFC 8414 metadata at /.well-known/oauth-authorization-server/mesh-a, naming the issuer exactly and endpoints under its path', async () => {
    const url = authorizationServerMetadataUrl(issuer);
    assert.equal(url, `${origin}/.well-known/oauth-authorization-server/mesh-a`);
    const { status, contentType, body } = await getJson(url);
    assert.equal(status, 200);
    assert.match(contentType, /^application\/json/);
    // RFC 8414 §3.3: a client MUST refuse metadata whose issuer is not the one it asked for.
    assert.equal(body.issuer, issuer);
    assert.equal(body.token_endpoint, `${issuer}/token`);
    assert.equal(body.jwks_uri, `${issuer}/jwks`);
    // The root has no metadata of this issuer: a client inserting the segment wrongly finds nothing.
    assert.equal((await getJson(`${origin}/.well-known/oauth-authorization-server`)).status, 404);
  });

  it('serves the same document under the OpenID Connect name, claiming nothing of an OpenID Provider', async () => {
    const oauth = await getJson(authorizationServerMetadataUrl(issuer));
    const openid = await getJson(openidConfigurationUrl(issuer));
    assert.equal(openid.status, 200);
    assert.deepEqual(openid.body, oauth.body);
    // Not an OpenID Provider: no authorization or userinfo endpoint, no id_token, no response type.
    for (const member of [
      'authorization_endpoint',
      'userinfo_endpoint',
      'id_token_signing_alg_values_supported',
      'subject_types_supported',
    ])
      assert.equal(member in openid.body, false, `no ${member}`);
    assert.deepEqual(openid.body.response_types_supported, []);
    assert.equal((openid.body.scopes_supported as string[] | undefined)?.includes('openid') ?? false, false);
  });

  it('issues a token at the discovered token endpoint that verifies with the discovered keys', async () => {
    const { body: metadata } = await getJson(authorizationServerMetadataUrl(issuer));
    const response = await request(metadata.token_endpoint as string, {
      method: 'POST',
      headers: {
        authorization: basic('billing-job', SECRETS['billing-job']),
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', audience: 'orders' }).toString(),
    });
    const issued = (await response.body.json()) as { access_token?: string; token_type?: string };
    assert.equal(response.statusCode, 200, JSON.stringify(issued));
    assert.equal(issued.token_type, 'Bearer');
    const { payload } = await jwtVerify(
      issued.access_token as string,
      createRemoteJWKSet(new URL(metadata.jwks_uri as string)),
      { issuer, audience: 'orders', typ: 'at+jwt' },
    );
    assert.equal(payload.client_id, 'billing-job');
  });

  it('answers the token endpoint only where the metadata says: POST /token at the root is not it', async () => {
    const response = await request(`${origin}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    });
    await response.body.dump();
    assert.equal(response.statusCode, 404);
  });

  it('a sidecar given only the issuer discovers the STS through its path and becomes ready', async () => {
    const admin = await freePort();
    writeFileSync(
      join(dir, 'sidecar.yaml'),
      stringify({
        service: 'orders',
        inbound: { port: await freePort(), app: 'http://127.0.0.1:9' },
        outbound: { port: await freePort() },
        admin: { port: admin },
        transport: { mode: 'plaintext' },
        sts: { issuer, clientId: 'orders', clientSecret: SECRETS.orders },
        policy: { file: FIXTURE_POLICY },
      }),
    );
    const sidecar = startBaton(['sidecar', '--config', join(dir, 'sidecar.yaml')]);
    running.push(sidecar);
    await waitFor(
      async () => {
        const response = await request(`http://127.0.0.1:${admin}/readyz`).catch(() => undefined);
        if (response === undefined) return false;
        return (await response.body.text()).startsWith('ready') && response.statusCode === 200;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: `the sidecar ready with issuer ${issuer}\n${sidecar.stderr()}` },
    );
  });
});
