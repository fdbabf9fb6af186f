import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import {
  isTokenError,
  TokenActInvalidError,
  TokenAlgNotAllowedError,
  TokenBadSignatureError,
  TokenExpiredError,
  TokenIssuerUnavailableError,
  TokenMalformedError,
  TokenNotYetValidError,
  TokenUnknownKidError,
  TokenUntrustedIssuerError,
  TokenWrongAudienceError,
} from '../../src/token/errors.ts';
import { createLocalKeySource, type KeySource } from '../../src/token/key-source.ts';
import { createAccessTokenVerifier } from '../../src/token/verifier.ts';
import { createSigner, meshClaims, nowSec, segment } from '../helpers/token.ts';

const MESH = 'https://sts.mesh.test';
const IDP = 'https://idp.example.test';
const refusedWith = (code: string, reason?: string) => (error: unknown) =>
  isTokenError(error) && error.code === code && (reason === undefined || error.reason === reason);

const mesh = await createSigner('mesh-1');
const idp = await createSigner('idp-1', 'RS256');
const verifier = createAccessTokenVerifier({
  issuers: [
    { issuer: MESH, keys: createLocalKeySource({ keys: [mesh.publicJwk] }), kind: 'mesh' },
    { issuer: IDP, keys: createLocalKeySource({ keys: [idp.publicJwk] }), kind: 'external', audience: 'api://shop' },
  ],
  maxActDepth: 4,
});

describe('access token verifier', () => {
  it('accepts a mesh token and reads its chain, scopes and identity', async () => {
    const verified = await verifier.verify(await mesh.sign(meshClaims(MESH, 'payments', ['gateway', 'orders'])), {
      audience: 'payments',
    });
    assert.deepEqual(verified.chain, ['gateway', 'orders']);
    assert.equal(verified.subject, 'alice');
    assert.equal(verified.user, true);
    assert.equal(verified.kind, 'mesh');
    assert.equal(verified.clientId, 'orders');
    assert.equal(verified.txn, 'txn-1');
    assert.deepEqual([...verified.scopes].sort(), ['orders:read', 'orders:write']);
    assert.ok(Object.isFrozen(verified.claims));
  });

  it('reads a client-credentials token as a service call whose chain is the client alone', async () => {
    const claims = meshClaims(MESH, 'orders', [], { sub: 'gateway', sub_type: 'service', client_id: 'gateway' });
    const verified = await verifier.verify(await mesh.sign(claims), { audience: 'orders' });
    assert.deepEqual(verified.chain, ['gateway']);
    assert.equal(verified.user, false);
  });

  it('accepts typ application/at+jwt', async () => {
    const token = await mesh.sign(meshClaims(MESH, 'orders', ['gateway']), { typ: 'application/at+jwt' });
    await verifier.verify(token, { audience: 'orders' });
  });

  it('refuses a token for another audience, or for several', async () => {
    const token = await mesh.sign(meshClaims(MESH, 'orders', ['gateway']));
    await assert.rejects(verifier.verify(token, { audience: 'payments' }), refusedWith(TokenWrongAudienceError.code));
    const two = await mesh.sign(meshClaims(MESH, 'orders', ['gateway'], { aud: ['orders', 'payments'] }));
    await assert.rejects(verifier.verify(two, { audience: 'orders' }), refusedWith(TokenWrongAudienceError.code));
    const one = await mesh.sign(meshClaims(MESH, 'orders', ['gateway'], { aud: ['orders'] }));
    await verifier.verify(one, { audience: 'orders' });
  });

  it('refuses an issuer outside the allow-list', async () => {
    const token = await mesh.sign(meshClaims('https://evil.test', 'orders', ['gateway']));
    await assert.rejects(verifier.verify(token, { audience: 'orders' }), refusedWith(TokenUntrustedIssuerError.code));
  });

  it('verifies each issuer only with its own keys', async () => {
    // Signed by the mesh key, claiming the IdP as issuer, with the IdP's kid.
    const token = await mesh.sign({ ...meshClaims(IDP, 'api://shop', []) }, { kid: 'idp-1' });
    await assert.rejects(verifier.verify(token, { audience: 'orders' }), refusedWith(TokenUnknownKidError.code));
    const sameKid = await mesh.sign({ ...meshClaims(IDP, 'api://shop', []) });
    await assert.rejects(verifier.verify(sameKid, { audience: 'orders' }), refusedWith(TokenUnknownKidError.code));
  });

  it('refuses an expired token, and one expired within the clock tolerance is accepted', async () => {
    const expired = await mesh.sign(meshClaims(MESH, 'orders', ['gateway'], { exp: nowSec() - 60 }));
    await assert.rejects(verifier.verify(expired, { audience: 'orders' }), refusedWith(TokenExpiredError.code));
    const justNow = await mesh.sign(meshClaims(MESH, 'orders', ['gateway'], { exp: nowSec() - 5 }));
    await verifier.verify(justNow, { audience: 'orders' });
  });

  it('refuses a token without exp', async () => {
    const claims = meshClaims(MESH, 'orders', ['gateway']);
    delete claims.exp;
    await assert.rejects(
      verifier.verify(await mesh.sign(claims), { audience: 'orders' }),
      refusedWith(TokenMalformedError.code),
    );
  });

  it('refuses nbf or iat in the future beyond the tolerance', async () => {
    const nbf = await mesh.sign(meshClaims(MESH, 'orders', ['gateway'], { nbf: nowSec() + 120 }));
    await assert.rejects(verifier.verify(nbf, { audience: 'orders' }), refusedWith(TokenNotYetValidError.code));
    const iat = await mesh.sign(meshClaims(MESH, 'orders', ['gateway'], { iat: nowSec() + 120 }));
    await assert.rejects(verifier.verify(iat, { audience: 'orders' }), refusedWith(TokenNotYetValidError.code));
  });

  it('refuses a tampered claims set or signature', async () => {
    const token = await mesh.sign(meshClaims(MESH, 'orders', ['gateway']));
    const [h, , s] = token.split('.') as [string, string, string];
    const forged = `${h}.${segment(meshClaims(MESH, 'orders', ['gateway'], { sub: 'admin' }))}.${s}`;
    await assert.rejects(verifier.verify(forged, { audience: 'orders' }), refusedWith(TokenBadSignatureError.code));
    const flipped = `${h}.${token.split('.')[1]}.${s.slice(0, 10)}${s[10] === 'A' ? 'B' : 'A'}${s.slice(11)}`;
    await assert.rejects(verifier.verify(flipped, { audience: 'orders' }), refusedWith(TokenBadSignatureError.code));
  });

  it('refuses an ECDSA signature with r = s = 0 (CVE-2022-21449)', async () => {
    const token = await mesh.sign(meshClaims(MESH, 'orders', ['gateway']));
    const [h, p] = token.split('.') as [string, string];
    const zero = Buffer.alloc(64).toString('base64url');
    await assert.rejects(
      verifier.verify(`${h}.${p}.${zero}`, { audience: 'orders' }),
      refusedWith(TokenBadSignatureError.code),
    );
  });

  it('refuses HS256 signed with the public key as the secret (algorithm confusion)', async () => {
    const secret = Buffer.from(JSON.stringify(mesh.publicJwk));
    const token = await new SignJWT(meshClaims(MESH, 'orders', ['gateway']))
      .setProtectedHeader({ alg: 'HS256', kid: 'mesh-1', typ: 'at+jwt' })
      .sign(secret);
    await assert.rejects(verifier.verify(token, { audience: 'orders' }), refusedWith(TokenAlgNotAllowedError.code));
  });

  it('never uses a key embedded in the header', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const token = await new SignJWT(meshClaims(MESH, 'orders', ['gateway']))
      .setProtectedHeader({
        alg: 'ES256',
        kid: 'mesh-1',
        typ: 'at+jwt',
        jwk: await exportJWK(publicKey),
        jku: 'http://127.0.0.1:1/jwks',
      })
      .sign(privateKey);
    await assert.rejects(verifier.verify(token, { audience: 'orders' }), refusedWith(TokenBadSignatureError.code));
  });

  it('refuses an act chain deeper than maxDepth', async () => {
    const token = await mesh.sign(meshClaims(MESH, 'x', ['a', 'b', 'c', 'd', 'e']));
    await assert.rejects(verifier.verify(token, { audience: 'x' }), refusedWith(TokenActInvalidError.code));
  });

  it('refuses a chain whose newest actor is not the client', async () => {
    const token = await mesh.sign(meshClaims(MESH, 'payments', ['gateway', 'orders'], { client_id: 'gateway' }));
    await assert.rejects(verifier.verify(token, { audience: 'payments' }), refusedWith(TokenActInvalidError.code));
  });

  it('refuses a mesh token without client_id or sub_type', async () => {
    const noClient = meshClaims(MESH, 'orders', ['gateway']);
    delete noClient.client_id;
    delete noClient.act;
    await assert.rejects(
      verifier.verify(await mesh.sign(noClient), { audience: 'orders' }),
      refusedWith(TokenActInvalidError.code),
    );
    const noType = meshClaims(MESH, 'orders', ['gateway'], { sub_type: undefined });
    await assert.rejects(
      verifier.verify(await mesh.sign(noType), { audience: 'orders' }),
      refusedWith(TokenMalformedError.code),
    );
  });

  it('accepts an external user token at its configured audience, with an empty chain', async () => {
    const token = await idp.sign({
      iss: IDP,
      sub: 'alice',
      aud: 'api://shop',
      exp: nowSec() + 60,
      iat: nowSec(),
      scp: ['orders:read'],
      acr: 'urn:mfa',
      auth_time: 5,
    });
    const verified = await verifier.verify(token, { audience: 'gateway' });
    assert.equal(verified.kind, 'external');
    assert.equal(verified.user, true);
    assert.deepEqual(verified.chain, []);
    assert.deepEqual([...verified.scopes], ['orders:read']);
    assert.equal(verified.acr, 'urn:mfa');
    assert.equal(verified.authTime, 5);
  });

  it('reads cnf.x5t#S256 (RFC 8705 §3.1) and refuses a cnf it cannot check', async () => {
    const thumbprint = 'q'.repeat(43);
    const bound = await verifier.verify(
      await mesh.sign(meshClaims(MESH, 'orders', ['gateway'], { cnf: { 'x5t#S256': thumbprint } })),
      { audience: 'orders' },
    );
    assert.equal(bound.confirmation, thumbprint);
    const unbound = await verifier.verify(await mesh.sign(meshClaims(MESH, 'orders', ['gateway'])), {
      audience: 'orders',
    });
    assert.equal(unbound.confirmation, undefined);
    for (const cnf of [
      { jkt: thumbprint },
      { 'x5t#S256': 'short' },
      { 'x5t#S256': thumbprint, jkt: thumbprint },
      'x5t',
      [thumbprint],
    ]) {
      await assert.rejects(
        verifier.verify(await mesh.sign(meshClaims(MESH, 'orders', ['gateway'], { cnf })), { audience: 'orders' }),
        refusedWith(TokenMalformedError.code, 'cnf'),
      );
    }
  });

  it('refuses an external token that claims an act chain', async () => {
    const token = await idp.sign({
      iss: IDP,
      sub: 'alice',
      aud: 'api://shop',
      exp: nowSec() + 60,
      act: { sub: 'gateway' },
    });
    await assert.rejects(verifier.verify(token, { audience: 'gateway' }), refusedWith(TokenActInvalidError.code));
  });

  it('answers 503 KEYS_UNAVAILABLE, not 401, when the issuer keys cannot be had', async () => {
    const unavailable: KeySource = {
      getKey: async () => {
        throw new TokenIssuerUnavailableError('expected keys', { reason: 'jwks' });
      },
      ready: () => false,
      refresh: async () => {},
      close: () => {},
    };
    const v = createAccessTokenVerifier({
      issuers: [{ issuer: MESH, keys: unavailable, kind: 'mesh' }],
      maxActDepth: 4,
    });
    await assert.rejects(
      v.verify(await mesh.sign(meshClaims(MESH, 'orders', ['gateway'])), { audience: 'orders' }),
      (e: unknown) =>
        refusedWith(TokenIssuerUnavailableError.code, 'jwks')(e) && (e as { status: number }).status === 503,
    );
  });

  it('never puts the token into an error message', async () => {
    const token = await mesh.sign(meshClaims(MESH, 'orders', ['gateway'], { exp: nowSec() - 100 }));
    const error = await verifier.verify(token, { audience: 'orders' }).catch((e: unknown) => e as Error);
    assert.ok(error instanceof Error);
    assert.ok(!error.message.includes(token) && !error.message.includes(token.split('.')[2] as string));
  });
});
