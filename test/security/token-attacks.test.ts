/**
 * JWT attacks against the running sidecars' inbound ports (real `baton
 * sidecar` and `baton sts` processes, see test/helpers/security-mesh.ts). Every attack
 * must be refused with 401 and reach no app; the first test shows the same
 * setup accepts an honest token, so a refusal is the protection at work.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, createHmac, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import {
  allOutput,
  compact,
  es256,
  type Name,
  rs256,
  type SecurityMesh,
  startSecurityMesh,
} from '../helpers/security-mesh.ts';
import { logLinesOut } from '../helpers/process.ts';
import { UnauthenticatedError } from '../../src/sidecar/errors.ts';
import {
  TokenActInvalidError,
  TokenAlgNotAllowedError,
  TokenBadSignatureError,
  TokenExpiredError,
  TokenMalformedError,
  TokenNotYetValidError,
  TokenUnknownKidError,
  TokenWrongAudienceError,
  TokenWrongTypError,
} from '../../src/token/errors.ts';

describe('token attacks on the sidecar inbound port', { timeout: 90_000 }, () => {
  let mesh: SecurityMesh;
  const attacker = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const agent = new Agent({ connections: 64 });

  before(async () => {
    mesh = await startSecurityMesh();
  });
  after(async () => {
    await agent.close();
    await mesh?.stop();
  });

  async function present(
    service: Name,
    token: string,
    path = service === 'payments' ? '/charges' : service === 'orders' ? '/orders' : '/',
  ) {
    const before = mesh.apps[service].hits;
    const r = await request(mesh.inbound(service, path), {
      headers: { authorization: `Bearer ${token}` },
      dispatcher: agent,
    });
    const text = await r.body.text();
    const body = text.startsWith('{') ? (JSON.parse(text) as Record<string, unknown>) : {};
    assert.ok(!text.includes(token), 'a problem body never echoes the token');
    return { status: r.statusCode, code: body.code, reachedApp: mesh.apps[service].hits > before, headers: r.headers };
  }

  async function refused(service: Name, token: string, code: string | RegExp, path?: string): Promise<void> {
    const r = await present(service, token, path);
    assert.equal(r.status, 401, `expected 401 for ${String(code)}, got ${r.status} ${String(r.code)}`);
    if (typeof code === 'string') assert.equal(r.code, code);
    else assert.match(String(r.code), code);
    // A token refused before parsing (size, alphabet) gets the bare challenge; any parsed one, invalid_token.
    assert.match(
      String(r.headers['www-authenticate']),
      r.code === UnauthenticatedError.code ? /^Bearer / : /error="invalid_token"/,
    );
    assert.equal(r.reachedApp, false);
  }

  it('accepts an honest mesh token and an honest IdP token (the baseline every attack departs from)', async () => {
    const mesh1 = await present('orders', mesh.meshToken('orders', ['gateway']));
    assert.equal(mesh1.status, 200);
    assert.equal(mesh1.reachedApp, true);
    const user = await present('gateway', mesh.userToken());
    assert.equal(user.status, 200);
  });

  it("refuses alg 'none' in every case spelling, with or without a signature", async () => {
    const claims = JSON.parse(
      Buffer.from(mesh.meshToken('orders', ['gateway']).split('.')[1] as string, 'base64url').toString(),
    ) as object;
    for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
      await refused('orders', compact({ alg, typ: 'at+jwt' }, claims, Buffer.from('x')), TokenAlgNotAllowedError.code);
      // An empty third segment is what an unsecured JWS looks like.
      const unsigned = compact({ alg, typ: 'at+jwt' }, claims, Buffer.alloc(0));
      const r = await present('orders', unsigned);
      assert.equal(r.status, 401);
      assert.equal(r.reachedApp, false);
    }
  });

  it('refuses HS256 signed with the STS public key (key confusion)', async () => {
    const jwks = (await (await request(`${mesh.stsUrl}/jwks`)).body.json()) as { keys: object[] };
    const publicPem = mesh.stsKey.export({ type: 'pkcs8', format: 'pem' });
    for (const secret of [JSON.stringify(jwks.keys[0]), String(publicPem)]) {
      const token = compact(
        { alg: 'HS256', typ: 'at+jwt', kid: mesh.stsKid },
        { iss: mesh.stsUrl, sub: 'mallory', aud: 'orders', exp: 9_999_999_999 },
        (input) => createHmac('sha256', secret).update(input).digest(),
      );
      await refused('orders', token, TokenAlgNotAllowedError.code);
    }
  });

  it('ignores embedded jwk, jku and x5u headers and never fetches from them', async () => {
    const attackerJwk = { ...attacker.publicKey.export({ format: 'jwk' }), kid: 'attacker' };
    const claims = {
      iss: mesh.stsUrl,
      sub: 'mallory',
      sub_type: 'user',
      aud: 'orders',
      client_id: 'gateway',
      act: { sub: 'gateway' },
      scope: 'shop',
      exp: Math.floor(Date.now() / 1000) + 60,
    };
    const headers = [
      { jwk: attackerJwk },
      { jwk: attackerJwk, kid: mesh.stsKid },
      { jku: `${mesh.trap.url}/jwks`, kid: 'attacker' },
      { jku: `${mesh.trap.url}/jwks`, kid: mesh.stsKid },
      { x5u: `${mesh.trap.url}/cert.pem`, kid: 'attacker' },
      { x5c: ['MIIB'], kid: mesh.stsKid },
    ];
    for (const extra of headers) {
      await refused(
        'orders',
        compact({ alg: 'ES256', typ: 'at+jwt', ...extra }, claims, es256(attacker.privateKey)),
        /^BATON_TOKEN_(UNKNOWN_KID|BAD_SIGNATURE)$/,
      );
    }
    assert.equal(mesh.trap.hits, 0, 'the trap server was contacted');
  });

  it('treats kid path traversal and injection strings as unknown keys', async () => {
    const claims = {
      iss: mesh.stsUrl,
      sub: 'mallory',
      sub_type: 'user',
      aud: 'orders',
      client_id: 'gateway',
      act: { sub: 'gateway' },
      exp: Math.floor(Date.now() / 1000) + 60,
    };
    for (const kid of [
      '../../../../../../dev/null',
      '/etc/passwd',
      "' OR '1'='1",
      '"; DROP TABLE keys; --',
      `${mesh.stsKid}\u0000`,
      '{{7*7}}',
      'a'.repeat(2000),
      '*',
    ]) {
      await refused(
        'orders',
        compact({ alg: 'ES256', typ: 'at+jwt', kid }, claims, es256(attacker.privateKey)),
        /^BATON_TOKEN_(UNKNOWN_KID|BAD_SIGNATURE)$/,
      );
    }
  });

  it('refuses an unknown crit header and b64: false even when the right key signed them', async () => {
    await refused(
      'orders',
      mesh.meshToken('orders', ['gateway'], {}, { crit: ['urn:example:unknown'], 'urn:example:unknown': true }),
      TokenMalformedError.code,
    );
    await refused(
      'orders',
      mesh.meshToken('orders', ['gateway'], {}, { crit: ['b64'], b64: false }),
      TokenMalformedError.code,
    );
    await refused('orders', mesh.meshToken('orders', ['gateway'], {}, { b64: false }), TokenMalformedError.code);
  });

  it('refuses a typ other than at+jwt: an id_token, plain JWT, or none', async () => {
    await refused('orders', mesh.meshToken('orders', ['gateway'], {}, { typ: 'JWT' }), TokenWrongTypError.code);
    await refused(
      'orders',
      mesh.meshToken('orders', ['gateway'], { nonce: 'n', azp: 'orders' }, { typ: 'id_token+jwt' }),
      TokenWrongTypError.code,
    );
    await refused('orders', mesh.meshToken('orders', ['gateway'], {}, { typ: undefined }), TokenWrongTypError.code);
    await refused('gateway', mesh.userToken({ nonce: 'n' }, { typ: 'JWT' }), TokenWrongTypError.code);
  });

  it("refuses another service's audience and an aud array naming several", async () => {
    await refused('orders', mesh.meshToken('payments', ['gateway', 'orders']), TokenWrongAudienceError.code);
    await refused(
      'orders',
      mesh.meshToken('orders', ['gateway'], { aud: ['orders', 'payments'] }),
      TokenWrongAudienceError.code,
    );
    await refused(
      'orders',
      mesh.meshToken('orders', ['gateway'], { aud: ['payments', 'orders'] }),
      TokenWrongAudienceError.code,
    );
    await refused('gateway', mesh.userToken({ aud: ['gateway', 'orders'] }), TokenWrongAudienceError.code);
  });

  it("refuses a token naming a trusted issuer but signed with another issuer's key (mix-up)", async () => {
    // iss is IdP A, the key and kid are IdP B's: both are trusted at the gateway, but only for their own tokens.
    await refused(
      'gateway',
      mesh.userToken({ iss: mesh.idpA.issuer }, { kid: mesh.idpB.kid }, mesh.idpB),
      TokenUnknownKidError.code,
    );
    // iss is the STS (whose chains are believed), signed by an IdP with the STS's kid.
    const forged = compact(
      { alg: 'ES256', typ: 'at+jwt', kid: mesh.stsKid },
      JSON.parse(
        Buffer.from(mesh.meshToken('orders', ['gateway']).split('.')[1] as string, 'base64url').toString(),
      ) as object,
      es256(mesh.idpA.privateKey),
    );
    await refused('orders', forged, TokenBadSignatureError.code);
    // An IdP token carrying a chain is not believed, even at the entrypoint.
    await refused('gateway', mesh.userToken({ act: { sub: 'orders' } }), TokenActInvalidError.code);
  });

  it('refuses exp as a string, a future nbf and a future iat', async () => {
    await refused(
      'orders',
      mesh.meshToken('orders', ['gateway'], { exp: String(Math.floor(Date.now() / 1000) + 300) }),
      /^BATON_TOKEN_(MALFORMED|EXPIRED)$/,
    );
    await refused(
      'orders',
      mesh.meshToken('orders', ['gateway'], { exp: Math.floor(Date.now() / 1000) - 120 }),
      TokenExpiredError.code,
    );
    await refused(
      'orders',
      mesh.meshToken('orders', ['gateway'], { nbf: Math.floor(Date.now() / 1000) + 3600 }),
      TokenNotYetValidError.code,
    );
    await refused(
      'orders',
      mesh.meshToken('orders', ['gateway'], { iat: Math.floor(Date.now() / 1000) + 3600 }),
      TokenNotYetValidError.code,
    );
  });

  it('refuses duplicate member names in the header and in the claims set', async () => {
    const sign = es256(mesh.stsKey);
    const exp = Math.floor(Date.now() / 1000) + 300;
    const payload = `{"iss":"${mesh.stsUrl}","sub":"alice","sub_type":"user","aud":"payments","client_id":"gateway","act":{"sub":"gateway"},"scope":"shop","exp":${exp},"aud":"orders"}`;
    await refused(
      'orders',
      compact(
        `{"alg":"ES256","typ":"at+jwt","kid":"${mesh.stsKid}","typ":"JWT"}`,
        payload.replace('"aud":"payments",', ''),
        sign,
      ),
      TokenMalformedError.code,
    );
    await refused(
      'orders',
      compact({ alg: 'ES256', typ: 'at+jwt', kid: mesh.stsKid }, payload, sign),
      TokenMalformedError.code,
    );
    // "\u0061ud" is "aud" once unescaped: still a duplicate.
    await refused(
      'orders',
      compact(
        { alg: 'ES256', typ: 'at+jwt', kid: mesh.stsKid },
        payload.replace(',"aud":"orders"', ',"\\u0061ud":"orders"'),
        sign,
      ),
      TokenMalformedError.code,
    );
  });

  it('refuses non-canonical base64url spellings of a valid token, even after the valid one was cached', async () => {
    const token = mesh.meshToken('orders', ['gateway']);
    assert.equal((await present('orders', token)).status, 200);
    const [h, p, s] = token.split('.') as [string, string, string];
    // P-256 signatures are 64 bytes: 86 base64url chars, the last carrying 4 unused bits.
    const last = s.at(-1) as string;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const flipped = alphabet[alphabet.indexOf(last) ^ 1] as string;
    const variants = [
      `${h}.${p}.${s.slice(0, -1)}${flipped}`,
      `${h}.${p}.${s}==`,
      `${h}=.${p}.${s}`,
      `${h}.${p}.${s}.`,
      `${h}.${p}.${s.replace(/-/g, '+').replace(/_/g, '/')}`,
    ];
    assert.equal(Buffer.from(variants[0] as string).length, Buffer.from(token).length);
    for (const variant of variants) {
      if (variant === token) continue;
      const r = await present('orders', variant);
      assert.equal(r.status, 401, `a re-spelled token was accepted: ${variant.slice(-6)}`);
      assert.equal(r.reachedApp, false);
    }
  });

  it('refuses an ECDSA signature with r = s = 0 (CVE-2022-21449) and with r = s = n', async () => {
    const claims = JSON.parse(
      Buffer.from(mesh.meshToken('orders', ['gateway']).split('.')[1] as string, 'base64url').toString(),
    ) as object;
    const header = { alg: 'ES256', typ: 'at+jwt', kid: mesh.stsKid };
    await refused('orders', compact(header, claims, Buffer.alloc(64)), TokenBadSignatureError.code);
    const n = Buffer.from('ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551', 'hex');
    await refused('orders', compact(header, claims, Buffer.concat([n, n])), TokenBadSignatureError.code);
    // A DER signature where P1363 is expected.
    await refused(
      'orders',
      compact(header, claims, Buffer.from('3006020100020100', 'hex')),
      /^BATON_TOKEN_(BAD_SIGNATURE|MALFORMED)$/,
    );
  });

  it('refuses a token over 8 KiB before parsing it, and answers 431 to a header section over 16 KiB', async () => {
    await refused(
      'orders',
      mesh.meshToken('orders', ['gateway'], { pad: 'x'.repeat(9000) }),
      /^BATON_(UNAUTHENTICATED|TOKEN_TOO_LARGE)$/,
    );
    const before = mesh.apps.orders.hits;
    const r = await request(mesh.inbound('orders', '/orders'), {
      headers: { authorization: `Bearer ${mesh.meshToken('orders', ['gateway'])}`, 'x-filler': 'y'.repeat(17 * 1024) },
    });
    await r.body.dump();
    assert.equal(r.statusCode, 431);
    assert.equal(mesh.apps.orders.hits, before);
  });

  it('refuses an act nested 1,000 deep without walking it (signed by the right key, large tokens allowed)', async () => {
    const chain = Array.from({ length: 1000 }, (_, i) => (i === 0 ? 'gateway' : 'orders'));
    const started = performance.now();
    await refused('payments', mesh.meshToken('payments', chain), TokenActInvalidError.code);
    assert.ok(performance.now() - started < 2_000);
    // At the default limits it never reaches a JSON parser: the header section alone is over 16 KiB.
    const r = await present('orders', mesh.meshToken('orders', chain));
    assert.equal(r.status, 431);
    assert.equal(r.reachedApp, false);
  });

  it('refuses an act whose newest actor is not the client_id the STS recorded (a forged chain)', async () => {
    await refused(
      'orders',
      mesh.meshToken('orders', ['gateway'], { client_id: 'payments' }),
      TokenActInvalidError.code,
    );
    await refused(
      'orders',
      mesh.meshToken('orders', ['gateway'], { act: { sub: 'gateway', extra: 1, act: 'x' } }),
      TokenActInvalidError.code,
    );
  });

  it('allows 10,000 tokens with random kids at most one JWKS refetch per cooldown', async () => {
    const before = mesh.idpA.jwksHits();
    const appHits = mesh.apps.gateway.hits;
    const claims = { iss: mesh.idpA.issuer, sub: 'mallory', aud: 'gateway', exp: Math.floor(Date.now() / 1000) + 60 };
    const header = compact({ alg: 'ES256', typ: 'at+jwt' }, claims, Buffer.alloc(64)).split('.');
    const statuses = new Map<number, number>();
    let next = 0;
    await Promise.all(
      Array.from({ length: 48 }, async () => {
        while (next < 10_000) {
          next++;
          // Only the header changes; the (junk) signature is never checked because no key matches.
          const h = Buffer.from(
            JSON.stringify({ alg: 'ES256', typ: 'at+jwt', kid: randomBytes(12).toString('base64url') }),
          ).toString('base64url');
          const r = await request(mesh.inbound('gateway', '/'), {
            headers: { authorization: `Bearer ${h}.${header[1]}.${header[2]}` },
            dispatcher: agent,
          });
          await r.body.dump();
          statuses.set(r.statusCode, (statuses.get(r.statusCode) ?? 0) + 1);
        }
      }),
    );
    assert.deepEqual([...statuses.keys()], [401]);
    assert.ok(mesh.idpA.jwksHits() - before <= 1, `expected at most one refetch, saw ${mesh.idpA.jwksHits() - before}`);
    assert.equal(mesh.apps.gateway.hits, appHits);
  });

  it('never writes a token into any log line', async () => {
    await logLinesOut();
    const output = allOutput(mesh);
    assert.doesNotMatch(output, /eyJ[A-Za-z0-9_-]{10,}\.eyJ/);
  });

  it('keeps an RS256 IdP token verifiable (the allow-list is not ES256-only) and refuses it for another IdP key', async () => {
    const token = compact(
      { alg: 'RS256', typ: 'at+jwt', kid: mesh.idpA.rsaKid },
      { iss: mesh.idpA.issuer, sub: 'alice', aud: 'gateway', scope: 'shop', exp: Math.floor(Date.now() / 1000) + 60 },
      rs256(mesh.idpA.rsaKey),
    );
    assert.equal((await present('gateway', token)).status, 200);
    const wrong = compact(
      { alg: 'RS256', typ: 'at+jwt', kid: mesh.idpA.rsaKid },
      { iss: mesh.idpA.issuer, sub: 'alice', aud: 'gateway', exp: Math.floor(Date.now() / 1000) + 60 },
      rs256(mesh.idpB.rsaKey),
    );
    await refused('gateway', wrong, TokenBadSignatureError.code);
  });
});
