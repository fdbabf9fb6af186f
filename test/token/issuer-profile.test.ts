/**
 * Interop per preset: tokens shaped exactly as each identity provider
 * documents its access tokens (header and claims from its public docs,
 * signed by a test key), and for each the three look-alikes a resource
 * server must refuse: the same IdP's id_token, a token for another
 * audience, and a token from another tenant or realm.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  isTokenError,
  TokenMalformedError,
  TokenUntrustedIssuerError,
  TokenWrongAudienceError,
  TokenWrongTypError,
} from '../../src/token/errors.ts';
import { type IssuerProfileOverrides, resolveProfile } from '../../src/token/issuer-profile.ts';
import { createLocalKeySource } from '../../src/token/key-source.ts';
import { createAccessTokenVerifier } from '../../src/token/verifier.ts';
import { createSigner, nowSec } from '../helpers/token.ts';

const refusedWith = (code: string, reason?: string) => (error: unknown) =>
  isTokenError(error) && error.code === code && (reason === undefined || error.reason === reason);
const idp = await createSigner('idp-rsa-1', 'RS256');

function verifierFor(issuer: string, audience: string, overrides: IssuerProfileOverrides) {
  return createAccessTokenVerifier({
    issuers: [
      {
        issuer,
        keys: createLocalKeySource({ keys: [idp.publicJwk] }),
        kind: 'external',
        audience,
        profile: resolveProfile(overrides),
      },
    ],
    maxActDepth: 4,
  });
}
const times = () => ({ iat: nowSec() - 5, exp: nowSec() + 300 });

describe('keycloak preset', () => {
  const ISS = 'https://keycloak.example.test/realms/shop';
  const verifier = verifierFor(ISS, 'gateway', { profile: 'keycloak' });
  // Keycloak 24+ access token: header typ JWT; payload typ Bearer, aud with "account", azp the client.
  const user = () => ({
    ...times(),
    auth_time: nowSec() - 60,
    jti: randomUUID(),
    iss: ISS,
    aud: ['gateway', 'account'],
    sub: 'f9c1a3e2-5b1d-4d0e-9a57-1c2b3d4e5f60',
    typ: 'Bearer',
    azp: 'web-shop',
    sid: randomUUID(),
    acr: '1',
    'allowed-origins': ['https://shop.example.test'],
    realm_access: { roles: ['default-roles-shop', 'offline_access', 'orders-writer'] },
    resource_access: { account: { roles: ['manage-account'] }, gateway: { roles: ['orders:read'] } },
    scope: 'openid email profile orders:read',
    email_verified: true,
    preferred_username: 'alice',
  });

  it('accepts a user access token: aud contains the service, client from azp', async () => {
    const verified = await verifier.verify(await idp.sign(user(), { typ: 'JWT' }), { audience: 'gateway' });
    assert.equal(verified.subject, 'f9c1a3e2-5b1d-4d0e-9a57-1c2b3d4e5f60');
    assert.equal(verified.subjectIssuer, ISS);
    assert.equal(verified.clientId, 'web-shop');
    assert.equal(verified.user, true);
    assert.ok(verified.scopes.has('orders:read'));
    assert.equal(verified.scopes.has('orders-writer'), false, 'roles are scopes only when a role rule says so');
  });

  it('reads a service-account (client credentials) token as a service', async () => {
    const claims = {
      ...user(),
      sub: '0b7a2c1e-0000-4000-8000-000000000001',
      azp: 'reporting',
      preferred_username: 'service-account-reporting',
      client_id: 'reporting',
      scope: 'orders:read',
    };
    const verified = await verifier.verify(await idp.sign(claims, { typ: 'JWT' }), { audience: 'gateway' });
    assert.equal(verified.user, false);
    assert.equal(verified.clientId, 'reporting');
  });

  it('maps realm roles or client roles to scopes by a named rule', async () => {
    const realm = verifierFor(ISS, 'gateway', {
      profile: 'keycloak',
      roleScopes: { rule: 'keycloak-realm-roles', map: { 'orders-writer': ['orders:write'] } },
    });
    const verified = await realm.verify(await idp.sign(user(), { typ: 'JWT' }), { audience: 'gateway' });
    assert.ok(verified.scopes.has('orders:write'));
    assert.equal(verified.scopes.has('offline_access'), false, 'an unmapped role grants nothing');
    const client = verifierFor(ISS, 'gateway', { profile: 'keycloak', roleScopes: { rule: 'keycloak-client-roles' } });
    const viaClient = await client.verify(await idp.sign({ ...user(), scope: 'openid' }, { typ: 'JWT' }), {
      audience: 'gateway',
    });
    assert.deepEqual([...viaClient.scopes].sort(), ['openid', 'orders:read']);
  });

  it('refuses its id_token, another audience, and another realm', async () => {
    const idToken = {
      ...user(),
      typ: 'ID',
      aud: 'gateway',
      nonce: 'n-0S6_WzA2Mj',
      at_hash: 'x8ZC1_Yl0oB2Ud5JcRbhvA',
      scope: undefined,
    };
    await assert.rejects(
      verifier.verify(await idp.sign(idToken, { typ: 'JWT' }), { audience: 'gateway' }),
      refusedWith(TokenWrongTypError.code, 'id-token'),
    );
    await assert.rejects(
      verifier.verify(await idp.sign({ ...user(), aud: ['account'] }, { typ: 'JWT' }), { audience: 'gateway' }),
      refusedWith(TokenWrongAudienceError.code),
    );
    const otherRealm = { ...user(), iss: 'https://keycloak.example.test/realms/other' };
    await assert.rejects(
      verifier.verify(await idp.sign(otherRealm, { typ: 'JWT' }), { audience: 'gateway' }),
      refusedWith(TokenUntrustedIssuerError.code),
    );
  });
});

describe('entra preset (Microsoft identity platform v2.0)', () => {
  const TID = '9188040d-6c67-4c5b-b112-36a304b66dad';
  const ISS = `https://login.microsoftonline.com/${TID}/v2.0`;
  const API = '6e74172b-be56-4843-9ff4-e66a39bb12e3';
  const verifier = verifierFor(ISS, API, { profile: 'entra' });
  const user = () => ({
    aud: API,
    iss: ISS,
    ...times(),
    nbf: nowSec() - 5,
    aio: 'AWQAm/8TAAAA',
    azp: '2b6f5d0e-3a0c-4a1b-9c5e-8f7d6e5c4b3a',
    azpacr: '0',
    name: 'Alice Example',
    oid: '690222be-ff1a-4d56-abd1-7e4f7d38e474',
    preferred_username: 'alice@contoso.example',
    rh: '0.AAAA',
    scp: 'Orders.Read access_as_user',
    sub: 'HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ',
    tid: TID,
    uti: 'fqiBqXLPj0eQa82S-IYFAA',
    ver: '2.0',
  });

  it('accepts a delegated token: typ JWT, subject from oid, scopes from scp, client from azp', async () => {
    const verified = await verifier.verify(await idp.sign(user(), { typ: 'JWT' }), { audience: 'gateway' });
    assert.equal(verified.subject, '690222be-ff1a-4d56-abd1-7e4f7d38e474');
    assert.equal(verified.clientId, '2b6f5d0e-3a0c-4a1b-9c5e-8f7d6e5c4b3a');
    assert.equal(verified.user, true);
    assert.deepEqual([...verified.scopes].sort(), ['Orders.Read', 'access_as_user']);
  });

  it('reads an app-only token (idtyp app, roles, no scp) as a service with its app roles as scopes', async () => {
    const { scp: _scp, name: _name, preferred_username: _upn, ...rest } = user();
    const app = {
      ...rest,
      azpacr: '1',
      oid: 'a1b2c3d4-0000-4000-8000-00000000000a',
      sub: 'a1b2c3d4-0000-4000-8000-00000000000a',
      roles: ['Orders.Read.All'],
      idtyp: 'app',
    };
    const verified = await verifier.verify(await idp.sign(app, { typ: 'JWT' }), { audience: 'gateway' });
    assert.equal(verified.user, false);
    assert.deepEqual([...verified.scopes], ['Orders.Read.All']);
  });

  it('refuses its id_token, another audience, and another tenant', async () => {
    // An app that is its own API: the id_token's aud is the API's client id, only the id_token markers give it away.
    const idToken = { ...user(), scp: undefined, nonce: '123523', ver: '2.0' };
    await assert.rejects(
      verifier.verify(await idp.sign(idToken, { typ: 'JWT' }), { audience: 'gateway' }),
      refusedWith(TokenWrongTypError.code, 'id-token'),
    );
    await assert.rejects(
      verifier.verify(await idp.sign({ ...user(), aud: '00000003-0000-0000-c000-000000000000' }, { typ: 'JWT' }), {
        audience: 'gateway',
      }),
      refusedWith(TokenWrongAudienceError.code),
    );
    const otherTenant = 'f8cdef31-a31e-4b4a-93e4-5f571e91255a';
    const fromOther = { ...user(), iss: `https://login.microsoftonline.com/${otherTenant}/v2.0`, tid: otherTenant };
    await assert.rejects(
      verifier.verify(await idp.sign(fromOther, { typ: 'JWT' }), { audience: 'gateway' }),
      refusedWith(TokenUntrustedIssuerError.code),
    );
    // The right issuer with another tenant's tid is not a token Entra would sign: refused, not guessed at.
    await assert.rejects(
      verifier.verify(await idp.sign({ ...user(), tid: otherTenant }, { typ: 'JWT' }), { audience: 'gateway' }),
      refusedWith(TokenMalformedError.code),
    );
  });

  it('refuses a v1.0-style typ at+jwt token, which Entra never issues', async () => {
    await assert.rejects(
      verifier.verify(await idp.sign(user()), { audience: 'gateway' }),
      refusedWith(TokenWrongTypError.code),
    );
  });
});

describe('entra preset with v1.0 tokens (an API whose accessTokenAcceptedVersion is 1 or unset)', () => {
  const TID = '9188040d-6c67-4c5b-b112-36a304b66dad';
  // The v1.0 issuer, character for character as Entra writes it in iss: another host, the tenant, a trailing slash.
  const ISS_V1 = `https://sts.windows.net/${TID}/`;
  const ISS_V2 = `https://login.microsoftonline.com/${TID}/v2.0`;
  // v1.0 tokens carry as aud the resource they were requested for: here the API's App ID URI.
  const APP_ID_URI = 'api://shop-gateway';
  const verifier = verifierFor(ISS_V1, APP_ID_URI, { profile: 'entra' });
  // A delegated v1.0 access token as Microsoft's access token claims reference lists it: appid, not azp; unique_name and upn; ver 1.0.
  const user = () => ({
    aud: APP_ID_URI,
    iss: ISS_V1,
    ...times(),
    nbf: nowSec() - 5,
    acr: '1',
    aio: 'AVQAq/8TAAAA',
    amr: ['pwd'],
    appid: '2b6f5d0e-3a0c-4a1b-9c5e-8f7d6e5c4b3a',
    appidacr: '0',
    family_name: 'Example',
    given_name: 'Alice',
    ipaddr: '192.0.2.10',
    name: 'Alice Example',
    oid: '690222be-ff1a-4d56-abd1-7e4f7d38e474',
    rh: '0.AAAA',
    scp: 'Orders.Read access_as_user',
    sub: 'l3_roISQU222bULS9yi2k0XpqpOiMz5H3ZACo1GeXA',
    tid: TID,
    unique_name: 'alice@contoso.example',
    upn: 'alice@contoso.example',
    uti: 'fqiBqXLPj0eQa82S-IYFAA',
    ver: '1.0',
  });

  it('accepts a delegated v1.0 token from the v1.0 issuer: subject from oid, client from appid (v1.0 has no azp), scopes from scp', async () => {
    const verified = await verifier.verify(await idp.sign(user(), { typ: 'JWT' }), { audience: 'gateway' });
    assert.equal(verified.subject, '690222be-ff1a-4d56-abd1-7e4f7d38e474');
    assert.equal(verified.subjectIssuer, ISS_V1);
    assert.equal(verified.clientId, '2b6f5d0e-3a0c-4a1b-9c5e-8f7d6e5c4b3a');
    assert.equal(verified.user, true);
    assert.deepEqual([...verified.scopes].sort(), ['Orders.Read', 'access_as_user']);
  });

  it('reads an app-only v1.0 token (roles, no scp) as a service, its app roles its scopes', async () => {
    const {
      scp: _scp,
      name: _name,
      upn: _upn,
      unique_name: _un,
      given_name: _g,
      family_name: _f,
      amr: _amr,
      ...rest
    } = user();
    const app = {
      ...rest,
      appidacr: '1',
      oid: 'a1b2c3d4-0000-4000-8000-00000000000a',
      sub: 'a1b2c3d4-0000-4000-8000-00000000000a',
      roles: ['Orders.Read.All'],
    };
    const verified = await verifier.verify(await idp.sign(app, { typ: 'JWT' }), { audience: 'gateway' });
    assert.equal(verified.user, false);
    assert.equal(verified.clientId, '2b6f5d0e-3a0c-4a1b-9c5e-8f7d6e5c4b3a');
    assert.deepEqual([...verified.scopes], ['Orders.Read.All']);
  });

  it('refuses a v1.0 token where only the v2.0 issuer is trusted, naming its iss: v1.0 and v2.0 are two issuers', async () => {
    const v2Only = verifierFor(ISS_V2, APP_ID_URI, { profile: 'entra' });
    await assert.rejects(
      v2Only.verify(await idp.sign(user(), { typ: 'JWT' }), { audience: 'gateway' }),
      (error: unknown) =>
        refusedWith(TokenUntrustedIssuerError.code)(error) && (error as Error).message.includes(ISS_V1),
    );
  });

  it("refuses a v1.0 token for another resource (its aud is what the client asked for), and one whose tid is not the issuer's tenant", async () => {
    await assert.rejects(
      verifier.verify(await idp.sign({ ...user(), aud: '6e74172b-be56-4843-9ff4-e66a39bb12e3' }, { typ: 'JWT' }), {
        audience: 'gateway',
      }),
      refusedWith(TokenWrongAudienceError.code),
    );
    await assert.rejects(
      verifier.verify(await idp.sign({ ...user(), tid: 'f8cdef31-a31e-4b4a-93e4-5f571e91255a' }, { typ: 'JWT' }), {
        audience: 'gateway',
      }),
      refusedWith(TokenMalformedError.code),
    );
  });
});

describe('okta preset (custom authorization server)', () => {
  const ISS = 'https://dev-133337.okta.example/oauth2/default';
  const verifier = verifierFor(ISS, 'api://shop', { profile: 'okta' });
  const user = () => ({
    ver: 1,
    jti: 'AT.0mP4JKAZX1iACIT4vbEDF7LpvDVjxypPMf0D7uX39RE',
    iss: ISS,
    aud: 'api://shop',
    ...times(),
    cid: '0oa1pcpxzwR9sBk4w4x7',
    uid: '00u1pcla5qYIREDLWCQV',
    scp: ['openid', 'orders:read'],
    auth_time: nowSec() - 60,
    sub: 'alice@example.com',
  });

  it('accepts a token with no typ header, scp as an array and cid as the client', async () => {
    const verified = await verifier.verify(await idp.sign(user(), { typ: undefined }), { audience: 'gateway' });
    assert.equal(verified.subject, 'alice@example.com');
    assert.equal(verified.clientId, '0oa1pcpxzwR9sBk4w4x7');
    assert.equal(verified.user, true);
    assert.deepEqual([...verified.scopes].sort(), ['openid', 'orders:read']);
  });

  it('reads a client-credentials token (sub is the client) as a service', async () => {
    const { uid: _uid, auth_time: _at, ...rest } = user();
    const verified = await verifier.verify(
      await idp.sign({ ...rest, sub: '0oa1pcpxzwR9sBk4w4x7', scp: ['orders:read'] }, { typ: undefined }),
      { audience: 'gateway' },
    );
    assert.equal(verified.user, false);
  });

  it('refuses its id_token, another audience, and another authorization server', async () => {
    const idToken = {
      ...user(),
      jti: 'ID.4eAWJOCMB3SX8XewDfVR',
      aud: 'api://shop',
      amr: ['pwd'],
      idp: '00o1pcla5qYIREDLWCQV',
      nonce: 'n-0S6',
      at_hash: 'pp3EI5gQlypuZfmZ5I5Bhg',
      scp: undefined,
    };
    await assert.rejects(
      verifier.verify(await idp.sign(idToken, { typ: undefined }), { audience: 'gateway' }),
      refusedWith(TokenWrongTypError.code, 'id-token'),
    );
    await assert.rejects(
      verifier.verify(await idp.sign({ ...user(), aud: 'api://default' }, { typ: undefined }), { audience: 'gateway' }),
      refusedWith(TokenWrongAudienceError.code),
    );
    const otherServer = { ...user(), iss: 'https://dev-133337.okta.example/oauth2/ausother' };
    await assert.rejects(
      verifier.verify(await idp.sign(otherServer, { typ: undefined }), { audience: 'gateway' }),
      refusedWith(TokenUntrustedIssuerError.code),
    );
  });
});

describe('auth0 preset', () => {
  const ISS = 'https://shop.eu.auth0.example/';
  const API = 'https://api.shop.example';
  const verifier = verifierFor(ISS, API, { profile: 'auth0' });
  const user = () => ({
    iss: ISS,
    sub: 'auth0|5f7c8ec7c33c6c004bbafe82',
    aud: [API, 'https://shop.eu.auth0.example/userinfo'],
    ...times(),
    azp: 'Xk3nF0pQ8sT2vY7wZ1aB4cD6eG9hJ0kL',
    scope: 'openid profile email orders:read',
    permissions: ['orders:read', 'orders:write'],
  });

  it('accepts a user token: typ JWT, aud an array with /userinfo, client from azp', async () => {
    const verified = await verifier.verify(await idp.sign(user(), { typ: 'JWT' }), { audience: 'gateway' });
    assert.equal(verified.subject, 'auth0|5f7c8ec7c33c6c004bbafe82');
    assert.equal(verified.clientId, 'Xk3nF0pQ8sT2vY7wZ1aB4cD6eG9hJ0kL');
    assert.equal(verified.user, true);
    assert.equal(verified.scopes.has('orders:write'), false);
  });

  it('accepts its RFC 9068 profile (typ at+jwt, client_id) and maps RBAC permissions when asked', async () => {
    const rbac = verifierFor(ISS, API, { profile: 'auth0', roleScopes: { rule: 'auth0-permissions' } });
    const verified = await rbac.verify(await idp.sign({ ...user(), client_id: 'Xk3nF0pQ8sT2vY7wZ1aB4cD6eG9hJ0kL' }), {
      audience: 'gateway',
    });
    assert.ok(verified.scopes.has('orders:write'));
  });

  it('reads a machine-to-machine token (gty client-credentials) as a service', async () => {
    const m2m = {
      iss: ISS,
      sub: 'Xk3nF0pQ8sT2vY7wZ1aB4cD6eG9hJ0kL@clients',
      aud: API,
      ...times(),
      gty: 'client-credentials',
      azp: 'Xk3nF0pQ8sT2vY7wZ1aB4cD6eG9hJ0kL',
      scope: 'orders:read',
    };
    const verified = await verifier.verify(await idp.sign(m2m, { typ: 'JWT' }), { audience: 'gateway' });
    assert.equal(verified.user, false);
  });

  it('refuses its id_token, another audience, and another tenant', async () => {
    const idToken = {
      iss: ISS,
      sub: 'auth0|5f7c8ec7c33c6c004bbafe82',
      aud: API,
      ...times(),
      nickname: 'alice',
      sid: 'Dq3Q',
      nonce: 'bXlOb25jZQ',
    };
    await assert.rejects(
      verifier.verify(await idp.sign(idToken, { typ: 'JWT' }), { audience: 'gateway' }),
      refusedWith(TokenWrongTypError.code, 'id-token'),
    );
    await assert.rejects(
      verifier.verify(await idp.sign({ ...user(), aud: ['https://api.other.example'] }, { typ: 'JWT' }), {
        audience: 'gateway',
      }),
      refusedWith(TokenWrongAudienceError.code),
    );
    await assert.rejects(
      verifier.verify(await idp.sign({ ...user(), iss: 'https://other.eu.auth0.example/' }, { typ: 'JWT' }), {
        audience: 'gateway',
      }),
      refusedWith(TokenUntrustedIssuerError.code),
    );
  });
});

describe('rfc9068 default profile keeps the strict rules', () => {
  const ISS = 'https://as.example.test';
  const verifier = verifierFor(ISS, 'gateway', {});
  const token = () => ({
    iss: ISS,
    sub: 'alice',
    aud: 'gateway',
    client_id: 'web',
    ...times(),
    jti: randomUUID(),
    scope: 'orders:read',
  });

  it('accepts typ at+jwt with exactly one aud', async () => {
    const verified = await verifier.verify(await idp.sign(token()), { audience: 'gateway' });
    assert.equal(verified.user, true);
    assert.equal(verified.clientId, 'web');
  });

  it('refuses typ JWT, no typ, and an aud with two members', async () => {
    await assert.rejects(
      verifier.verify(await idp.sign(token(), { typ: 'JWT' }), { audience: 'gateway' }),
      refusedWith(TokenWrongTypError.code),
    );
    await assert.rejects(
      verifier.verify(await idp.sign(token(), { typ: undefined }), { audience: 'gateway' }),
      refusedWith(TokenWrongTypError.code),
    );
    await assert.rejects(
      verifier.verify(await idp.sign({ ...token(), aud: ['gateway', 'account'] }), { audience: 'gateway' }),
      refusedWith(TokenWrongAudienceError.code),
    );
  });

  it('reads a token whose sub is its client as a service token (RFC 9068 §2.2)', async () => {
    const verified = await verifier.verify(await idp.sign({ ...token(), sub: 'web' }), { audience: 'gateway' });
    assert.equal(verified.user, false);
  });

  it('refuses a sub_id in an external token: only the STS qualifies a subject', async () => {
    const forged = { ...token(), sub_id: { format: 'iss_sub', iss: 'https://other-idp.test', sub: 'alice' } };
    await assert.rejects(
      verifier.verify(await idp.sign(forged), { audience: 'gateway' }),
      refusedWith(TokenMalformedError.code),
    );
  });
});
