/**
 * `baton token check` as a user runs it (in this process: test/helpers/cli.ts),
 * the token on stdin or as an argument, keys from a loopback issuer. It says whether the
 * profile accepts the token and what identity it carries, and never
 * prints the token.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { createSigner, nowSec, type TestSigner } from '../helpers/token.ts';
import { closeServer, type Listening, listen } from '../helpers/http-server.ts';
import { type CliRun, runCli } from '../helpers/cli.ts';
import { TokenWrongTypError } from '../../src/token/errors.ts';

function baton(args: readonly string[], stdin?: string): Promise<CliRun> {
  return runCli(args, { stdin: stdin ?? '' });
}

describe('baton token check', { timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-token-check-'));
  let idp: Listening;
  let signer: TestSigner;
  let issuer: string;

  before(async () => {
    signer = await createSigner('kc-1', 'RS256');
    idp = await listen((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [signer.publicJwk] }));
    });
    issuer = `${idp.url}/realms/shop`;
  });
  after(async () => {
    await closeServer(idp.server);
    rmSync(dir, { recursive: true, force: true });
  });

  const keycloakToken = (extra: Record<string, unknown> = {}) =>
    signer.sign(
      {
        iss: issuer,
        sub: ' alice',
        aud: ['gateway', 'account'],
        typ: 'Bearer',
        azp: 'web-shop',
        scope: 'openid orders:read',
        iat: nowSec(),
        exp: nowSec() + 300,
        ...extra,
      },
      { typ: 'JWT' },
    );

  it('reads the token from stdin and shows the identity a keycloak profile reads, never the token', async () => {
    const token = await keycloakToken();
    const run = await baton(
      [
        'token',
        'check',
        '--issuer',
        issuer,
        '--jwks-uri',
        `${idp.url}/certs`,
        '--profile',
        'keycloak',
        '--audience',
        'gateway',
      ],
      token,
    );
    assert.equal(run.code, 0, run.stderr + run.stdout);
    assert.match(run.stdout, /^accepted by profile keycloak of http:\/\/127\.0\.0\.1:\d+\/realms\/shop$/m);
    assert.match(run.stdout, /subject: +" alice"/);
    assert.match(run.stdout, /subject type: +user/);
    assert.match(run.stdout, /client: +"web-shop"/);
    assert.match(run.stdout, /scopes: +openid orders:read/);
    assert.ok(!run.stdout.includes(token) && !run.stderr.includes(token));
    for (const segment of token.split('.')) assert.ok(!run.stdout.includes(segment));
  });

  it('refuses with the error code and exit 1 what the profile refuses: the strict default, another audience', async () => {
    const token = await keycloakToken();
    const strict = await baton(
      ['token', 'check', '-', '--issuer', issuer, '--jwks-uri', `${idp.url}/certs`, '--audience', 'gateway', '--json'],
      token,
    );
    assert.equal(strict.code, 1);
    assert.equal(JSON.parse(strict.stdout).code, TokenWrongTypError.code);
    const other = await baton([
      'token',
      'check',
      token,
      '--issuer',
      issuer,
      '--jwks-uri',
      `${idp.url}/certs`,
      '--profile',
      'keycloak',
      '--audience',
      'billing',
    ]);
    assert.equal(other.code, 1);
    assert.match(other.stdout, /^refused: BATON_TOKEN_WRONG_AUDIENCE: /);
    assert.ok(!other.stdout.includes(token));
  });

  it('checks against an entrypoint sidecar config: its issuers, profiles and audience', async () => {
    const file = join(dir, 'gateway.yaml');
    writeFileSync(
      file,
      stringify({
        service: 'gateway',
        sts: { issuer: 'http://127.0.0.1:1', clientId: 'gateway', clientSecret: 'gateway-secret' },
        policy: { file: join(dir, 'none.yaml') },
        externalIssuers: [
          { issuer, jwksUri: `${idp.url}/certs`, profile: 'keycloak', serviceWhen: ['keycloak-service-account'] },
        ],
      }),
      { mode: 0o600 },
    );
    const service = await keycloakToken({ sub: '7d3c0b6e-service', client_id: 'reporting', azp: 'reporting' });
    const run = await baton(['token', 'check', '--config', file, '--json'], service);
    assert.equal(run.code, 0, run.stderr + run.stdout);
    const report = JSON.parse(run.stdout) as Record<string, unknown>;
    assert.equal(report.accepted, true);
    assert.equal(report.subjectType, 'service');
    assert.equal(report.subjectIssuer, issuer);
    assert.equal(report.client, 'reporting');
  });

  it('answers a usage error with exit 2 and a bad profile name with the list of presets', async () => {
    const none = await baton(['token', 'check', '--audience', 'gateway'], 'x');
    assert.equal(none.code, 2);
    const bad = await baton(['token', 'check', '--issuer', issuer, '--audience', 'gateway', '--profile', 'ping'], 'x');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /rfc9068, keycloak, entra, okta, auth0/);
  });
});
