/**
 * RFC 7662 introspection of opaque access tokens, against a real
 * oidc-provider that issues them (its issuer has a path, so the
 * introspection endpoint is found by OpenID Connect Discovery after the
 * RFC 8414 URL with the path inserted answers 404), and against loopback
 * endpoints that misbehave. Nothing may fail open.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { isTokenError, TokenExpiredError, TokenInactiveError, TokenIntrospectionUnavailableError, TokenMalformedError, TokenUntrustedIssuerError, TokenWrongAudienceError } from '../../src/token/errors.ts';
import { createIntrospector, type IntrospectorOptions } from '../../src/token/introspection.ts';
import { resolveProfile } from '../../src/token/issuer-profile.ts';
import { createLocalKeySource } from '../../src/token/key-source.ts';
import { createAccessTokenVerifier } from '../../src/token/verifier.ts';
import { closeServer, type Listening, listen } from '../helpers/http-server.ts';
import { freePort } from '../helpers/net.ts';
import { OP_INTROSPECTOR, type OidcProvider, startOidcProvider } from '../helpers/oidc-provider.ts';
import { createSigner, nowSec } from './issuer-fixture.ts';

const refusedWith = (code: string) => (error: unknown) => isTokenError(error) && error.code === code;
const otherIdp = await createSigner('other-1');

function verifierWith(issuer: string, introspection: Omit<IntrospectorOptions, 'issuer'>) {
  const introspector = createIntrospector({ issuer, ...introspection });
  const verifier = createAccessTokenVerifier({
    issuers: [
      { issuer, keys: createLocalKeySource({ keys: [] }), kind: 'external', audience: 'gateway', profile: resolveProfile({ profile: 'rfc9068', audienceMatch: 'contains' }), introspector },
      { issuer: 'https://other.example.test', keys: createLocalKeySource({ keys: [otherIdp.publicJwk] }), kind: 'external', audience: 'gateway' },
    ],
    maxActDepth: 4,
  });
  return { introspector, verifier };
}

describe('introspection against oidc-provider issuing opaque tokens', () => {
  let op: OidcProvider;
  const credentials = { clientId: OP_INTROSPECTOR.id, clientSecret: OP_INTROSPECTOR.secret };

  before(async () => {
    op = await startOidcProvider({ format: 'opaque', path: '/realms/shop' });
  });
  after(async () => {
    await op.close();
  });

  it('accepts an active opaque token: discovered endpoint, client auth, a client-credentials token read as a service', async () => {
    const { verifier } = verifierWith(op.issuer, credentials);
    const token = await op.accessToken('orders:read shop');
    assert.equal(token.includes('.'), false, 'oidc-provider issued an opaque token');
    const verified = await verifier.verify(token, { audience: 'gateway' });
    assert.equal(verified.subjectIssuer, op.issuer);
    assert.equal(verified.subject, 'web');
    assert.equal(verified.clientId, 'web');
    assert.equal(verified.user, false);
    assert.deepEqual([...verified.scopes].sort(), ['orders:read', 'shop']);
    assert.ok(verified.expiresAt > nowSec());
    // The sidecar's verified-token cache may reuse this answer for maxCacheSeconds (default 300) at most.
    assert.ok(verified.reuseUntil !== undefined && verified.reuseUntil <= nowSec() + 300 && verified.reuseUntil < verified.expiresAt);
  });

  it('caches an answer until exp, capped by maxCacheSeconds, and bounded in size', async () => {
    let clock = Date.now();
    const { verifier, introspector } = verifierWith(op.issuer, { ...credentials, cacheMaxEntries: 2, maxCacheSeconds: 60, now: () => clock });
    const token = await op.accessToken();
    const before = op.introspections();
    await verifier.verify(token, { audience: 'gateway' });
    await verifier.verify(token, { audience: 'gateway' });
    assert.equal(op.introspections() - before, 1, 'the second verification is served from the cache');
    // Revoked at the IdP: the cached answer holds until maxCacheSeconds, then the IdP's word wins.
    await op.revoke(token);
    await verifier.verify(token, { audience: 'gateway' });
    clock += 61_000;
    await assert.rejects(verifier.verify(token, { audience: 'gateway' }), refusedWith(TokenInactiveError.code));
    for (let i = 0; i < 3; i++) await verifier.verify(await op.accessToken(), { audience: 'gateway' });
    assert.equal(introspector.size, 2);
  });

  it('refuses a token the IdP does not know, and remembers the refusal briefly', async () => {
    const { verifier } = verifierWith(op.issuer, credentials);
    const made = 'x'.repeat(43);
    const before = op.introspections();
    await assert.rejects(verifier.verify(made, { audience: 'gateway' }), refusedWith(TokenInactiveError.code));
    await assert.rejects(verifier.verify(made, { audience: 'gateway' }), refusedWith(TokenInactiveError.code));
    assert.equal(op.introspections() - before, 1);
  });

  it('fails closed (503 code) when baton cannot authenticate to the introspection endpoint', async () => {
    const { verifier } = verifierWith(op.issuer, { clientId: OP_INTROSPECTOR.id, clientSecret: 'wrong-secret-0123456789' });
    await assert.rejects(verifier.verify(await op.accessToken(), { audience: 'gateway' }), refusedWith(TokenIntrospectionUnavailableError.code));
  });

  it('fails closed when another client asks: the IdP answers inactive', async () => {
    const { verifier } = verifierWith(op.issuer, { clientId: 'web', clientSecret: 'web-client-secret-0123456789', authMethod: 'client_secret_post' });
    await assert.rejects(verifier.verify(await op.accessToken(), { audience: 'gateway' }), refusedWith(TokenInactiveError.code));
  });

  it('never sends a JWT to the introspection endpoint', async () => {
    const { verifier } = verifierWith(op.issuer, credentials);
    const before = op.introspections();
    const jwt = await otherIdp.sign({ iss: 'https://other.example.test', sub: 'alice', aud: 'gateway', client_id: 'web', iat: nowSec(), exp: nowSec() + 60 });
    assert.equal((await verifier.verify(jwt, { audience: 'gateway' })).subjectIssuer, 'https://other.example.test');
    await assert.rejects(verifier.verify(`${jwt.split('.')[0]}.e30.x`, { audience: 'gateway' }), (e: unknown) => isTokenError(e));
    assert.equal(op.introspections(), before);
  });
});

describe('introspection endpoints that misbehave', () => {
  let answer: (req: IncomingMessage, res: ServerResponse) => void = () => {};
  let endpoint: Listening;
  const ISSUER = 'https://idp.misbehaving.test';
  const reply = (status: number, body: unknown) => (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  };
  const active = (extra: Record<string, unknown> = {}) => ({ active: true, sub: 'alice', client_id: 'web', aud: 'gateway', exp: nowSec() + 60, scope: 'shop', ...extra });
  const verify = async (token = 'opaque-token-value') => {
    const { verifier } = verifierWith(ISSUER, { endpoint: endpoint.url, clientId: 'baton', clientSecret: 's3cret', inactiveCacheSeconds: 0 });
    return await verifier.verify(token, { audience: 'gateway' });
  };

  before(async () => {
    endpoint = await listen((req, res) => answer(req, res));
  });
  after(async () => {
    await closeServer(endpoint.server);
  });

  it('authenticates with client_secret_basic and reads an honest answer as a user', async () => {
    answer = reply(200, active());
    const verified = await verify();
    assert.equal(verified.user, true);
    assert.equal(endpoint.seen.at(-1)?.headers.authorization, `Basic ${Buffer.from('baton:s3cret').toString('base64')}`);
  });

  it('refuses whatever is not exactly active: true', async () => {
    answer = reply(200, { active: 'true', sub: 'alice', aud: 'gateway', exp: nowSec() + 60 });
    await assert.rejects(verify(), refusedWith(TokenIntrospectionUnavailableError.code));
    answer = reply(200, { active: false, sub: 'alice', aud: 'gateway', exp: nowSec() + 60 });
    await assert.rejects(verify(), refusedWith(TokenInactiveError.code));
    answer = reply(200, '[true]');
    await assert.rejects(verify(), refusedWith(TokenIntrospectionUnavailableError.code));
    answer = reply(200, 'not json');
    await assert.rejects(verify(), refusedWith(TokenIntrospectionUnavailableError.code));
    answer = reply(500, active());
    await assert.rejects(verify(), refusedWith(TokenIntrospectionUnavailableError.code));
  });

  it('refuses an active token for another audience, another issuer, expired, a refresh token or a sender-constrained one', async () => {
    answer = reply(200, active({ aud: 'billing' }));
    await assert.rejects(verify(), refusedWith(TokenWrongAudienceError.code));
    answer = reply(200, active({ iss: 'https://someone-else.test' }));
    await assert.rejects(verify(), refusedWith(TokenUntrustedIssuerError.code));
    answer = reply(200, active({ exp: nowSec() - 600 }));
    await assert.rejects(verify(), refusedWith(TokenExpiredError.code));
    answer = reply(200, active({ exp: undefined }));
    await assert.rejects(verify(), refusedWith(TokenMalformedError.code));
    answer = reply(200, active({ token_type: 'refresh_token' }));
    await assert.rejects(verify(), refusedWith(TokenMalformedError.code));
    answer = reply(200, active({ cnf: { jkt: 'abc' } }));
    await assert.rejects(verify(), refusedWith(TokenMalformedError.code));
  });

  it('fails closed when the endpoint is unreachable or too slow', async () => {
    const dead = `http://127.0.0.1:${await freePort()}/introspect`;
    const { verifier } = verifierWith(ISSUER, { endpoint: dead, clientId: 'baton', clientSecret: 's3cret' });
    await assert.rejects(verifier.verify('opaque-token-value', { audience: 'gateway' }), refusedWith(TokenIntrospectionUnavailableError.code));
    answer = (req) => req.resume();
    const slow = verifierWith(ISSUER, { endpoint: endpoint.url, clientId: 'baton', clientSecret: 's3cret', timeoutMs: 200 });
    const started = Date.now();
    await assert.rejects(slow.verifier.verify('opaque-token-value', { audience: 'gateway' }), refusedWith(TokenIntrospectionUnavailableError.code));
    assert.ok(Date.now() - started < 2_000);
  });

  it('never puts the token into an error message', async () => {
    answer = reply(200, active({ aud: 'billing' }));
    const token = 'secret-opaque-token-0123456789';
    await assert.rejects(verify(token), (error: unknown) => !String((error as Error).message).includes(token));
  });
});
