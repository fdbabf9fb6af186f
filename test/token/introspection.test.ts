/**
 * RFC 7662 introspection of opaque access tokens, against a real
 * oidc-provider that issues them (its issuer has a path, so the
 * introspection endpoint is found by OpenID Connect Discovery after the
 * RFC 8414 URL with the path inserted answers 404), and against loopback
 * endpoints that misbehave. Nothing may fail open.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import {
  isTokenError,
  TokenExpiredError,
  TokenInactiveError,
  TokenIntrospectionThrottledError,
  TokenIssuerUnavailableError,
  TokenMalformedError,
  TokenUntrustedIssuerError,
  TokenWrongAudienceError,
} from '../../src/token/errors.ts';
import { createIntrospector, type IntrospectorOptions } from '../../src/token/introspection.ts';
import { resolveProfile } from '../../src/token/issuer-profile.ts';
import { createLocalKeySource } from '../../src/token/key-source.ts';
import { createAccessTokenVerifier } from '../../src/token/verifier.ts';
import { closeServer, type Listening, listen } from '../helpers/http-server.ts';
import { freePort } from '../helpers/net.ts';
import { OP_INTROSPECTOR, type OidcProvider, startOidcProvider } from '../helpers/oidc-provider.ts';
import { createSigner, nowSec } from '../helpers/token.ts';

const refusedWith = (code: string, reason?: string) => (error: unknown) =>
  isTokenError(error) && error.code === code && (reason === undefined || error.reason === reason);
const otherIdp = await createSigner('other-1');

function verifierWith(issuer: string, introspection: Omit<IntrospectorOptions, 'issuer'>) {
  const introspector = createIntrospector({ issuer, ...introspection });
  const verifier = createAccessTokenVerifier({
    issuers: [
      {
        issuer,
        keys: createLocalKeySource({ keys: [] }),
        kind: 'external',
        audience: 'gateway',
        profile: resolveProfile({ profile: 'rfc9068', audienceMatch: 'contains' }),
        introspector,
      },
      {
        issuer: 'https://other.example.test',
        keys: createLocalKeySource({ keys: [otherIdp.publicJwk] }),
        kind: 'external',
        audience: 'gateway',
      },
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
    assert.ok(
      verified.reuseUntil !== undefined &&
        verified.reuseUntil <= nowSec() + 300 &&
        verified.reuseUntil < verified.expiresAt,
    );
  });

  it('caches an answer until exp, capped by maxCacheSeconds, and bounded in size', async () => {
    let clock = Date.now();
    const { verifier, introspector } = verifierWith(op.issuer, {
      ...credentials,
      cacheMaxEntries: 2,
      maxCacheSeconds: 60,
      now: () => clock,
    });
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
    // Two active answers (the bound), and the revoked token's refusal, kept apart from them.
    assert.equal(introspector.size, 3);
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
    const { verifier } = verifierWith(op.issuer, {
      clientId: OP_INTROSPECTOR.id,
      clientSecret: 'wrong-secret-0123456789',
    });
    await assert.rejects(
      verifier.verify(await op.accessToken(), { audience: 'gateway' }),
      refusedWith(TokenIssuerUnavailableError.code, 'introspection'),
    );
  });

  it('fails closed when another client asks: the IdP answers inactive', async () => {
    const { verifier } = verifierWith(op.issuer, {
      clientId: 'web',
      clientSecret: 'web-client-secret-0123456789',
      authMethod: 'client_secret_post',
    });
    await assert.rejects(
      verifier.verify(await op.accessToken(), { audience: 'gateway' }),
      refusedWith(TokenInactiveError.code),
    );
  });

  it('never sends a JWT to the introspection endpoint', async () => {
    const { verifier } = verifierWith(op.issuer, credentials);
    const before = op.introspections();
    const jwt = await otherIdp.sign({
      iss: 'https://other.example.test',
      sub: 'alice',
      aud: 'gateway',
      client_id: 'web',
      iat: nowSec(),
      exp: nowSec() + 60,
    });
    assert.equal((await verifier.verify(jwt, { audience: 'gateway' })).subjectIssuer, 'https://other.example.test');
    await assert.rejects(verifier.verify(`${jwt.split('.')[0]}.e30.x`, { audience: 'gateway' }), (e: unknown) =>
      isTokenError(e),
    );
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
  const active = (extra: Record<string, unknown> = {}) => ({
    active: true,
    sub: 'alice',
    client_id: 'web',
    aud: 'gateway',
    exp: nowSec() + 60,
    scope: 'shop',
    ...extra,
  });
  const verify = async (token = 'opaque-token-value') => {
    const { verifier } = verifierWith(ISSUER, {
      endpoint: endpoint.url,
      clientId: 'baton',
      clientSecret: 's3cret',
      inactiveCacheSeconds: 0,
    });
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
    assert.equal(
      endpoint.seen.at(-1)?.headers.authorization,
      `Basic ${Buffer.from('baton:s3cret').toString('base64')}`,
    );
  });

  it('refuses whatever is not exactly active: true', async () => {
    answer = reply(200, { active: 'true', sub: 'alice', aud: 'gateway', exp: nowSec() + 60 });
    await assert.rejects(verify(), refusedWith(TokenIssuerUnavailableError.code, 'introspection'));
    answer = reply(200, { active: false, sub: 'alice', aud: 'gateway', exp: nowSec() + 60 });
    await assert.rejects(verify(), refusedWith(TokenInactiveError.code));
    answer = reply(200, '[true]');
    await assert.rejects(verify(), refusedWith(TokenIssuerUnavailableError.code, 'introspection'));
    answer = reply(200, 'not json');
    await assert.rejects(verify(), refusedWith(TokenIssuerUnavailableError.code, 'introspection'));
    answer = reply(500, active());
    await assert.rejects(verify(), refusedWith(TokenIssuerUnavailableError.code, 'introspection'));
  });

  it('refuses an answer with a duplicate member, whichever value comes last (RFC 8259 §4)', async () => {
    const exp = nowSec() + 60;
    answer = reply(200, `{"active":false,"sub":"alice","aud":"gateway","exp":${exp},"active":true}`);
    await assert.rejects(verify(), refusedWith(TokenIssuerUnavailableError.code, 'introspection'));
    answer = reply(200, `{"active":true,"sub":"mallory","client_id":"web","aud":"gateway","exp":${exp},"sub":"alice"}`);
    await assert.rejects(verify(), refusedWith(TokenIssuerUnavailableError.code, 'introspection'));
    answer = reply(
      200,
      `{"active":true,"sub":"alice","client_id":"web","aud":"gateway","exp":${exp},"\u0061ctive":false}`,
    );
    await assert.rejects(verify(), refusedWith(TokenIssuerUnavailableError.code, 'introspection'));
    // The same answers without the duplicate are read as they say.
    answer = reply(200, `{"active":true,"sub":"alice","client_id":"web","aud":"gateway","exp":${exp}}`);
    assert.equal((await verify()).subject, 'alice');
  });

  it('never sends a JWT-shaped token to the opaque issuer: a JWE, a JWS with a segment added or cut, a bare JOSE header and payload', async () => {
    answer = reply(200, active());
    const header = Buffer.from(JSON.stringify({ alg: 'RSA-OAEP-256', enc: 'A256GCM', kid: 'k' })).toString('base64url');
    const jws = await otherIdp.sign({
      iss: 'https://other.example.test',
      sub: 'alice',
      aud: 'gateway',
      client_id: 'web',
      iat: nowSec(),
      exp: nowSec() + 60,
    });
    const [h, p, sig] = jws.split('.') as [string, string, string];
    const seen = endpoint.seen.length;
    for (const token of [
      `${header}.a2V5.aXY.Y2lwaGVy.dGFn`,
      `${jws}.extra`,
      `${h}.${p}`,
      `${h}.${p}.${sig}.x.y.z`,
      `${Buffer.from(' { "alg" : "ES256" }').toString('base64url')}.x`,
    ]) {
      await assert.rejects(verify(token), (e: unknown) => isTokenError(e) && e.status === 401, token.slice(0, 30));
    }
    assert.equal(endpoint.seen.length, seen, 'the introspection endpoint saw none of them');
    // Opaque tokens with dots that are no JOSE header are still introspected.
    for (const token of ['ya29.a0AfH6SMBopaque-token-value', 'ory_at_AbCdEf.GhIjKl'])
      assert.equal((await verify(token)).subject, 'alice');
    assert.equal(endpoint.seen.length, seen + 2);
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
    await assert.rejects(
      verifier.verify('opaque-token-value', { audience: 'gateway' }),
      refusedWith(TokenIssuerUnavailableError.code, 'introspection'),
    );
    answer = (req) => req.resume();
    const slow = verifierWith(ISSUER, {
      endpoint: endpoint.url,
      clientId: 'baton',
      clientSecret: 's3cret',
      timeoutMs: 200,
    });
    const started = Date.now();
    await assert.rejects(
      slow.verifier.verify('opaque-token-value', { audience: 'gateway' }),
      refusedWith(TokenIssuerUnavailableError.code, 'introspection'),
    );
    assert.ok(Date.now() - started < 2_000);
  });

  it('never puts the token into an error message', async () => {
    answer = reply(200, active({ aud: 'billing' }));
    const token = 'secret-opaque-token-0123456789';
    await assert.rejects(verify(token), (error: unknown) => !String((error as Error).message).includes(token));
  });
});

describe('introspection under a flood of made-up tokens (issue #23)', () => {
  const ISSUER = 'https://idp.flooded.test';
  const REAL = new Set<string>();
  let endpoint: Listening;
  let clock = Date.UTC(2030, 0, 1);
  const sec = (): number => Math.floor(clock / 1000);

  before(async () => {
    // Answers like an IdP: active for the tokens it issued, inactive for anything else.
    endpoint = await listen((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        const token = new URLSearchParams(body).get('token') ?? '';
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify(
            REAL.has(token)
              ? {
                  active: true,
                  sub: token.slice(0, 12),
                  client_id: 'web',
                  aud: 'gateway',
                  exp: sec() + 3600,
                  scope: 'shop',
                }
              : { active: false },
          ),
        );
      });
    });
  });
  after(async () => {
    await closeServer(endpoint.server);
  });

  const issued = (): string => {
    const token = `real-${randomBytes(16).toString('base64url')}`;
    REAL.add(token);
    return token;
  };
  const madeUp = (): string => `fake-${randomBytes(16).toString('base64url')}`;
  const setup = (extra: Partial<IntrospectorOptions> = {}) =>
    verifierWith(ISSUER, {
      endpoint: endpoint.url,
      clientId: 'baton',
      clientSecret: 's3cret',
      maxCallsPerSecond: 5,
      maxCacheSeconds: 60,
      now: () => clock,
      ...extra,
    });
  const outcome = (promise: Promise<unknown>): Promise<string> =>
    promise.then(
      () => 'ok',
      (error: { code?: string }) => String(error.code),
    );

  it('spends at most the budget on tokens it has not seen active, refuses the rest at once with Retry-After, and still serves known users', async () => {
    const { verifier } = setup();
    const alice = issued();
    const bob = issued();
    await verifier.verify(alice, { audience: 'gateway' });
    await verifier.verify(bob, { audience: 'gateway' });
    // Past maxCacheSeconds alice's answer must be asked again, and the budget has refilled.
    clock += 61_000;
    const before = endpoint.seen.length;
    const flood = await Promise.all(
      Array.from({ length: 200 }, () => outcome(verifier.verify(madeUp(), { audience: 'gateway' }))),
    );
    assert.equal(endpoint.seen.length - before, 5, 'one call per unit of the budget, no more');
    assert.equal(flood.filter((code) => code === TokenInactiveError.code).length, 5);
    assert.equal(flood.filter((code) => code === TokenIntrospectionThrottledError.code).length, 195);
    const refusal = await verifier
      .verify(madeUp(), { audience: 'gateway' })
      .catch((error: unknown) => error as { status: number; extensions: { retryAfter?: number } });
    assert.equal((refusal as { status: number }).status, 503);
    assert.equal((refusal as { extensions: { retryAfter?: number } }).extensions.retryAfter, 1);
    // During the flood: alice and bob, whom the issuer called active, are asked again without the budget, then served from the cache.
    for (const known of [alice, bob, alice, bob])
      assert.equal((await verifier.verify(known, { audience: 'gateway' })).subject, known.slice(0, 12));
    assert.equal(endpoint.seen.length - before, 7);
    // A new user during the flood is refused like a made-up token (the price of the bound), and gets in once it refills.
    const carol = issued();
    assert.equal(await outcome(verifier.verify(carol, { audience: 'gateway' })), TokenIntrospectionThrottledError.code);
    clock += 1_000;
    assert.equal(await outcome(verifier.verify(carol, { audience: 'gateway' })), 'ok');
  });

  it('spends one call and one unit on concurrent requests with one new token', async () => {
    const { verifier } = setup({ maxCallsPerSecond: 1 });
    const dave = issued();
    const before = endpoint.seen.length;
    const results = await Promise.all(
      Array.from({ length: 20 }, () => outcome(verifier.verify(dave, { audience: 'gateway' }))),
    );
    assert.deepEqual(new Set(results), new Set(['ok']));
    assert.equal(endpoint.seen.length - before, 1);
  });

  it('keeps refusals apart: made-up tokens never push a known user out of the cache', async () => {
    const { verifier, introspector } = setup({ cacheMaxEntries: 2, maxCallsPerSecond: 50 });
    const erin = issued();
    await verifier.verify(erin, { audience: 'gateway' });
    for (let i = 0; i < 40; i++) await outcome(verifier.verify(madeUp(), { audience: 'gateway' }));
    const before = endpoint.seen.length;
    assert.equal((await verifier.verify(erin, { audience: 'gateway' })).subject, erin.slice(0, 12));
    assert.equal(endpoint.seen.length, before, 'erin was answered from the cache');
    assert.equal(introspector.size, 3, 'erin, and the two most recent refusals');
  });
});

describe('two introspecting issuers, told apart by token prefix', () => {
  const ISSUERS = { a: 'https://idp-a.example.test', b: 'https://idp-b.example.test' } as const;
  type Name = keyof typeof ISSUERS;
  let endpoints: Record<Name, Listening & { tokens: string[] }>;

  /** A real endpoint that records every token sent to it and calls it active, as its own issuer's. */
  async function endpointFor(name: Name): Promise<Listening & { tokens: string[] }> {
    const tokens: string[] = [];
    const listening = await listen(async (req, res) => {
      let body = '';
      for await (const chunk of req) body += String(chunk);
      tokens.push(new URLSearchParams(body).get('token') ?? '');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          active: true,
          iss: ISSUERS[name],
          sub: `user-of-${name}`,
          client_id: 'web',
          aud: 'gateway',
          exp: nowSec() + 60,
        }),
      );
    });
    return Object.assign(listening, { tokens });
  }

  function verifier(prefixes: Record<Name, string | undefined>) {
    const issuer = (name: Name) => ({
      issuer: ISSUERS[name],
      keys: createLocalKeySource({ keys: [] }),
      kind: 'external' as const,
      audience: 'gateway',
      introspector: createIntrospector({
        issuer: ISSUERS[name],
        endpoint: endpoints[name].url,
        tokenPrefix: prefixes[name],
        clientId: 'baton',
        clientSecret: `secret-${name}`,
      }),
    });
    return createAccessTokenVerifier({ issuers: [issuer('a'), issuer('b')], maxActDepth: 4 });
  }

  before(async () => {
    endpoints = { a: await endpointFor('a'), b: await endpointFor('b') };
  });
  after(async () => {
    await closeServer(endpoints.a.server);
    await closeServer(endpoints.b.server);
  });

  it('sends each token to the endpoint of the issuer whose prefix it starts with, and no other', async () => {
    const v = verifier({ a: 'a_at_', b: 'b_at_' });
    const [forA, forB] = [`a_at_${randomBytes(16).toString('hex')}`, `b_at_${randomBytes(16).toString('hex')}`];
    const a = await v.verify(forA, { audience: 'gateway' });
    const b = await v.verify(forB, { audience: 'gateway' });
    assert.deepEqual(
      [a.subjectIssuer, a.subject, b.subjectIssuer, b.subject],
      [ISSUERS.a, 'user-of-a', ISSUERS.b, 'user-of-b'],
    );
    assert.deepEqual(
      endpoints.a.tokens.filter((t) => t === forA || t === forB),
      [forA],
      'issuer a saw its own token only',
    );
    assert.deepEqual(
      endpoints.b.tokens.filter((t) => t === forA || t === forB),
      [forB],
      'issuer b saw its own token only',
    );
    assert.equal(
      endpoints.a.seen.at(-1)?.headers.authorization,
      `Basic ${Buffer.from('baton:secret-a').toString('base64')}`,
      "each endpoint gets its own issuer's credentials",
    );
  });

  it('refuses a token that starts with no prefix as from an untrusted issuer, sending it nowhere', async () => {
    const v = verifier({ a: 'a_at_', b: 'b_at_' });
    const seen = endpoints.a.tokens.length + endpoints.b.tokens.length;
    for (const token of [
      `c_at_${randomBytes(16).toString('hex')}`,
      `A_AT_${randomBytes(16).toString('hex')}`,
      `xa_at_${randomBytes(16).toString('hex')}`,
    ]) {
      await assert.rejects(
        v.verify(token, { audience: 'gateway' }),
        refusedWith(TokenUntrustedIssuerError.code),
        token.slice(0, 6),
      );
    }
    assert.equal(endpoints.a.tokens.length + endpoints.b.tokens.length, seen, 'neither endpoint saw them');
  });

  it('will not be built with prefixes a token could match twice, or with one missing', () => {
    for (const prefixes of [
      { a: 'at_', b: 'at_' },
      { a: 'at_', b: 'at_b_' },
      { a: 'at_a', b: 'at' },
      { a: 'a_at_', b: undefined },
    ]) {
      assert.throws(() => verifier(prefixes), TypeError, JSON.stringify(prefixes));
    }
  });

  it('holds an introspector to its prefix even when called directly', async () => {
    const introspector = createIntrospector({
      issuer: ISSUERS.a,
      endpoint: endpoints.a.url,
      tokenPrefix: 'a_at_',
      clientId: 'baton',
      clientSecret: 'secret-a',
    });
    const seen = endpoints.a.tokens.length;
    await assert.rejects(
      introspector.introspect(`b_at_${randomBytes(16).toString('hex')}`),
      refusedWith(TokenUntrustedIssuerError.code),
    );
    assert.equal(endpoints.a.tokens.length, seen);
  });
});
