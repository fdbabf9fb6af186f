import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair } from 'jose';
import { Agent } from 'undici';
import { closeServer, listen } from '../helpers/http-server.ts';
import { waitFor } from '../helpers/net.ts';
import { isTokenError, TokenIssuerUnavailableError, TokenUnknownKidError } from '../../src/token/errors.ts';
import { createLocalKeySource, createRemoteKeySource, type KeySource } from '../../src/token/key-source.ts';
import { discoverJwksUri, discoveryUrls, validateJwks } from '../../src/token/jwks-fetch.ts';
import { isRocaModulus, rsaModulus } from '../../src/token/weak-rsa.ts';
import { createSigner, type TestSigner } from '../helpers/token.ts';
import { type JwksServer, startJwksServer } from '../helpers/jwks-server.ts';

const refusedWith = (code: string, reason?: string) => (error: unknown) =>
  isTokenError(error) && error.code === code && (reason === undefined || error.reason === reason);

describe('remote key source', () => {
  let server: JwksServer;
  let first: TestSigner;
  let second: TestSigner;
  const dispatcher = new Agent();
  const sources: KeySource[] = [];
  const track = (source: KeySource): KeySource => (sources.push(source), source);

  before(async () => {
    first = await createSigner('k1');
    second = await createSigner('k2');
    server = await startJwksServer([first.publicJwk]);
  });
  after(async () => {
    for (const source of sources) source.close();
    await dispatcher.close();
    await server.close();
  });

  it('fetches the set at start and finds a key by kid', async () => {
    const keys = track(createRemoteKeySource({ issuer: server.url, jwksUri: `${server.url}/jwks`, dispatcher }));
    await waitFor(async () => keys.ready(), { what: 'keys ready', timeoutMs: 3000 });
    const key = await keys.getKey({ alg: 'ES256', kid: 'k1' });
    assert.ok(key);
  });

  it('causes at most one refetch per cooldown under a flood of 10,000 unknown kids', async () => {
    server.setKeys([first.publicJwk]);
    const keys = track(
      createRemoteKeySource({ issuer: server.url, jwksUri: `${server.url}/jwks`, dispatcher, cooldownMs: 60_000 }),
    );
    await waitFor(async () => keys.ready(), { what: 'keys ready', timeoutMs: 3000 });
    const before = server.hits();
    const concurrent = Array.from({ length: 5_000 }, () =>
      keys.getKey({ alg: 'ES256', kid: randomBytes(8).toString('hex') }),
    );
    const outcomes = await Promise.allSettled(concurrent);
    for (let i = 0; i < 5_000; i++) {
      await assert.rejects(
        keys.getKey({ alg: 'ES256', kid: randomBytes(8).toString('hex') }),
        refusedWith(TokenUnknownKidError.code),
      );
    }
    assert.ok(outcomes.every((o) => o.status === 'rejected' && refusedWith(TokenUnknownKidError.code)(o.reason)));
    assert.ok(server.hits() - before <= 1, `expected at most one refetch, got ${server.hits() - before}`);
  });

  it('picks up a rotated key on first sight of its kid', async () => {
    server.setKeys([first.publicJwk]);
    const keys = track(
      createRemoteKeySource({ issuer: server.url, jwksUri: `${server.url}/jwks`, dispatcher, cooldownMs: 0 }),
    );
    await waitFor(async () => keys.ready(), { what: 'keys ready', timeoutMs: 3000 });
    server.setKeys([first.publicJwk, second.publicJwk]);
    assert.ok(await keys.getKey({ alg: 'ES256', kid: 'k2' }));
  });

  it('keeps serving the last good keys while the endpoint is down, until maxStaleMs', async () => {
    server.setKeys([first.publicJwk]);
    server.setMode('up');
    let clock = Date.now();
    const keys = track(
      createRemoteKeySource({
        issuer: server.url,
        jwksUri: `${server.url}/jwks`,
        dispatcher,
        cooldownMs: 0,
        maxStaleMs: 60_000,
        now: () => clock,
      }),
    );
    await waitFor(async () => keys.ready(), { what: 'keys ready', timeoutMs: 3000 });
    server.setMode('down');
    await keys.refresh();
    clock += 30_000;
    assert.ok(await keys.getKey({ alg: 'ES256', kid: 'k1' }));
    await assert.rejects(keys.getKey({ alg: 'ES256', kid: 'k9' }), refusedWith(TokenUnknownKidError.code));
    clock += 31_000;
    await assert.rejects(
      keys.getKey({ alg: 'ES256', kid: 'k1' }),
      refusedWith(TokenIssuerUnavailableError.code, 'jwks'),
    );
    assert.equal(keys.ready(), false);
    server.setMode('up');
    assert.ok(await keys.getKey({ alg: 'ES256', kid: 'k1' }));
    assert.equal(keys.ready(), true);
  });

  it('keeps the last good keys when the endpoint sends garbage, an oversized body, or a set with private keys', async () => {
    server.setKeys([first.publicJwk]);
    server.setMode('up');
    const keys = track(
      createRemoteKeySource({ issuer: server.url, jwksUri: `${server.url}/jwks`, dispatcher, cooldownMs: 0 }),
    );
    await waitFor(async () => keys.ready(), { what: 'keys ready', timeoutMs: 3000 });
    server.setMode('garbage');
    await keys.refresh();
    server.setMode('huge');
    await keys.refresh();
    server.setMode('up');
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    server.setKeys([{ ...(await exportJWK(privateKey)), kid: 'k1' }]);
    await keys.refresh();
    assert.ok(await keys.getKey({ alg: 'ES256', kid: 'k1' }));
  });

  it('fails with KEYS_UNAVAILABLE, bounded in time, when the endpoint never answers', async () => {
    server.setMode('slow');
    const keys = track(
      createRemoteKeySource({
        issuer: server.url,
        jwksUri: `${server.url}/jwks`,
        dispatcher,
        timeoutMs: 200,
        cooldownMs: 0,
      }),
    );
    const started = Date.now();
    await assert.rejects(
      keys.getKey({ alg: 'ES256', kid: 'k1' }),
      refusedWith(TokenIssuerUnavailableError.code, 'jwks'),
    );
    assert.ok(Date.now() - started < 1500);
    assert.equal(keys.ready(), false);
    server.setMode('up');
  });

  it('finds jwks_uri through RFC 8414 discovery', async () => {
    server.setKeys([first.publicJwk]);
    server.setMode('up');
    const keys = track(createRemoteKeySource({ issuer: server.url, discovery: true, dispatcher }));
    await waitFor(async () => keys.ready(), { what: 'keys ready', timeoutMs: 3000 });
    assert.ok(await keys.getKey({ alg: 'ES256', kid: 'k1' }));
  });
});

describe('local key source', () => {
  it('serves a static set and takes a rotated one through update', async () => {
    const a = await createSigner('a');
    const b = await createSigner('b');
    const keys = createLocalKeySource({ keys: [a.publicJwk] });
    assert.ok(await keys.getKey({ alg: 'ES256', kid: 'a' }));
    await assert.rejects(keys.getKey({ alg: 'ES256', kid: 'b' }), refusedWith(TokenUnknownKidError.code));
    keys.update({ keys: [a.publicJwk, b.publicJwk] });
    assert.ok(await keys.getKey({ alg: 'ES256', kid: 'b' }));
  });

  it('refuses a token without a kid when several keys could match', async () => {
    const a = await createSigner('a');
    const b = await createSigner('b');
    const keys = createLocalKeySource({ keys: [a.publicJwk, b.publicJwk] });
    await assert.rejects(keys.getKey({ alg: 'ES256' }), refusedWith(TokenUnknownKidError.code));
  });

  it('refuses JWK Sets with duplicate kids, symmetric keys or private keys', async () => {
    const a = await createSigner('a');
    assert.throws(() => validateJwks({ keys: [a.publicJwk, a.publicJwk] }));
    assert.throws(() => validateJwks({ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'h' }] }));
    assert.throws(() => validateJwks({ keys: [{ ...a.publicJwk, d: 'AAAA' }] }));
    assert.throws(() => validateJwks({ nokeys: [] }));
  });
});

describe('weak RSA keys', () => {
  it('does not mistake freshly generated RSA moduli for ROCA-weak ones', async () => {
    for (let i = 0; i < 3; i++) {
      const { publicKey } = await generateKeyPair('RS256', { extractable: true });
      const jwk = await exportJWK(publicKey);
      assert.equal(isRocaModulus(rsaModulus(jwk.n as string)), false);
    }
  });
});

describe('issuer discovery (RFC 8414, OpenID Connect Discovery)', () => {
  it('inserts the well-known segment before an issuer path (RFC 8414 §3.1), and appends it for OIDC', () => {
    assert.deepEqual(discoveryUrls('https://idp.example/realms/shop'), [
      'https://idp.example/.well-known/oauth-authorization-server/realms/shop',
      'https://idp.example/realms/shop/.well-known/openid-configuration',
    ]);
    assert.deepEqual(discoveryUrls('https://idp.example/'), [
      'https://idp.example/.well-known/oauth-authorization-server',
      'https://idp.example/.well-known/openid-configuration',
    ]);
  });

  it('falls back to OpenID Connect Discovery, and refuses a document naming another issuer', async () => {
    const signer = await createSigner('kc');
    let claimed = '';
    const server = await listen((req, res) => {
      req.resume();
      if (req.url === '/realms/shop/.well-known/openid-configuration') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ issuer: claimed, jwks_uri: `${server.url}/certs` }));
      } else if (req.url === '/certs') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ keys: [signer.publicJwk] }));
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    const issuer = `${server.url}/realms/shop`;
    try {
      claimed = issuer;
      assert.equal(await discoverJwksUri(issuer, { timeoutMs: 2_000, maxBytes: 65_536 }), `${server.url}/certs`);
      assert.deepEqual(
        server.seen.slice(0, 2).map((r) => r.url),
        ['/.well-known/oauth-authorization-server/realms/shop', '/realms/shop/.well-known/openid-configuration'],
      );
      // A metadata document for another realm (or a look-alike host) must not hand over its keys (RFC 8414 §3.3).
      claimed = `${server.url}/realms/other`;
      await assert.rejects(discoverJwksUri(issuer, { timeoutMs: 2_000, maxBytes: 65_536 }), /expected issuer/);
      const keys = createRemoteKeySource({ issuer, discovery: true, cooldownMs: 0 });
      await assert.rejects(
        keys.getKey({ alg: 'ES256', kid: 'kc' }),
        refusedWith(TokenIssuerUnavailableError.code, 'jwks'),
      );
      keys.close();
    } finally {
      await closeServer(server.server);
    }
  });
});
