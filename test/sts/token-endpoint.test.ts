import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { BadRequestError, MethodNotAllowedError, NotFoundError, problemType } from '../../src/core/errors.ts';
import { TOKEN_EXCHANGE_GRANT, TokenType } from '../../src/core/token-types.ts';
import { startTestIdp, type TestIdp } from '../helpers/sts-idp.ts';
import { type InProcessSts, startInProcessSts } from '../helpers/sts-in-process.ts';
import {
  assertionParams,
  baseConfig,
  basic,
  clientJwt,
  type ClientKey,
  clientKey,
  type ConfigFile,
  SECRETS,
  writeStsConfig,
} from '../helpers/sts.ts';
import { PolicyDeniedError } from '../../src/policy/language/errors.ts';
import { ActorTokenInvalidError, InvalidTargetError, MayActMismatchError } from '../../src/sts/errors.ts';
import { auditLinesOf } from '../helpers/audit-lines.ts';

const ISSUER = 'http://sts.test';

describe('STS token endpoint (RFC 8693, in process)', () => {
  let idp: TestIdp;
  let ordersKey: ClientKey;
  let configFile: ConfigFile;
  let sts: InProcessSts;

  before(async () => {
    idp = await startTestIdp();
    ordersKey = await clientKey('orders-1');
    configFile = writeStsConfig(
      baseConfig({
        issuer: ISSUER,
        idp,
        ordersJwks: [ordersKey.publicJwk],
        extra: { resources: { 'urn:example:cooperation-context': 'orders' } },
      }),
    );
    sts = await startInProcessSts(configFile.config);
  });
  after(async () => {
    await sts.close();
    await idp.close();
    configFile.remove();
  });

  const exchange = (
    clientId: keyof typeof SECRETS,
    subjectToken: string,
    form: Record<string, string | string[]> = {},
  ) =>
    sts.token(
      {
        grant_type: TOKEN_EXCHANGE_GRANT,
        subject_token: subjectToken,
        subject_token_type: TokenType.accessToken,
        ...form,
      },
      { authorization: basic(clientId, SECRETS[clientId]) },
    );

  const ordersExchange = async (subjectToken: string, form: Record<string, string | string[]> = {}) =>
    sts.token({
      grant_type: TOKEN_EXCHANGE_GRANT,
      subject_token: subjectToken,
      subject_token_type: TokenType.accessToken,
      ...assertionParams(await clientJwt('orders', ordersKey, `${ISSUER}/token`)),
      ...form,
    });

  const verifyIssued = async (token: string, audience: string) => {
    const jwks = (await sts.server.app.inject({ method: 'GET', url: '/jwks' })).json();
    return (await jwtVerify(token, createLocalJWKSet(jwks), { issuer: ISSUER, audience, typ: 'at+jwt' })).payload;
  };

  it('answers an RFC 8693 §2.2.1 response for an A.1-style request: Basic auth, resource, access token subject', async () => {
    const response = await exchange('gateway', await idp.userToken(), {
      resource: 'http://orders.shop.svc.cluster.local:7070/api',
    });
    assert.equal(response.status, 200);
    assert.deepEqual(Object.keys(response.body).sort(), [
      'access_token',
      'expires_in',
      'issued_token_type',
      'scope',
      'token_type',
    ]);
    assert.equal(response.body.issued_token_type, TokenType.accessToken);
    assert.equal(response.body.token_type, 'Bearer');
    assert.equal(response.headers['cache-control'], 'no-store');
    assert.equal(response.headers.pragma, 'no-cache');
    const claims = await verifyIssued(response.body.access_token as string, 'orders');
    assert.equal(claims.aud, 'orders');
  });

  it('mints an at+jwt for the entry hop: user kept, caller as client_id and sole actor, fresh txn, acr and auth_time carried', async () => {
    const userToken = await idp.userToken({ sub: 'alice', scope: 'openid orders:read payments:charge ledger:write' });
    const response = await exchange('gateway', userToken, { audience: 'orders' });
    assert.equal(response.status, 200);
    const token = response.body.access_token as string;
    assert.equal(decodeProtectedHeader(token).typ, 'at+jwt');
    assert.equal(decodeProtectedHeader(token).kid, sts.keys.active().kid);
    const claims = await verifyIssued(token, 'orders');
    const user = decodeJwt(userToken);
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.client_id, 'gateway');
    assert.deepEqual(claims.act, { sub: 'gateway' });
    assert.equal(claims.sub_type, 'user');
    // RFC 9493: the subject's issuer travels with the subject, so two IdPs' alice never merge.
    assert.deepEqual(claims.sub_id, { format: 'iss_sub', iss: idp.issuer, sub: 'alice' });
    assert.equal(claims.acr, 'urn:baton:acr:mfa');
    assert.equal(claims.auth_time, user.auth_time);
    assert.match(claims.txn as string, /^[A-Za-z0-9_-]{22}$/);
    // openid is not usable anywhere downstream of gateway -> orders.
    assert.equal(claims.scope, 'ledger:write orders:read payments:charge');
    assert.equal(response.body.scope, claims.scope);
    assert.ok((claims.exp as number) <= (user.exp as number));
    assert.ok((claims.exp as number) - (claims.iat as number) <= 300);
  });

  it('nests the newest actor outermost at the second hop and keeps txn (RFC 8693 §4.1)', async () => {
    const first = await exchange('gateway', await idp.userToken(), { audience: 'orders' });
    const second = await ordersExchange(first.body.access_token as string, { audience: 'payments' });
    assert.equal(second.status, 200, JSON.stringify(second.body));
    const claims = await verifyIssued(second.body.access_token as string, 'payments');
    assert.deepEqual(claims.act, { sub: 'orders', act: { sub: 'gateway' } });
    assert.equal(claims.client_id, 'orders');
    assert.equal(claims.txn, decodeJwt(first.body.access_token as string).txn);
    assert.equal(claims.scope, 'ledger:write payments:charge');
  });

  it('issues only the requested scopes when they are within the subject token', async () => {
    const response = await exchange('gateway', await idp.userToken(), { audience: 'orders', scope: 'orders:read' });
    assert.equal(response.status, 200);
    assert.equal(response.body.scope, 'orders:read');
  });

  it('never outlives the subject token', async () => {
    const response = await exchange('gateway', await idp.userToken({}, { ttlSeconds: 40 }), { audience: 'orders' });
    assert.equal(response.status, 200);
    assert.ok((response.body.expires_in as number) <= 40);
  });

  it('answers requested_token_type jwt with issued_token_type jwt', async () => {
    const response = await exchange('gateway', await idp.userToken(), {
      audience: 'orders',
      requested_token_type: TokenType.jwt,
    });
    assert.equal(response.status, 200);
    assert.equal(response.body.issued_token_type, TokenType.jwt);
  });

  it('maps an explicitly configured resource URI to its service (RFC 8707)', async () => {
    const response = await exchange('gateway', await idp.userToken(), { resource: 'urn:example:cooperation-context' });
    assert.equal(response.status, 200);
    assert.equal(decodeJwt(response.body.access_token as string).aud, 'orders');
  });

  it('refuses several target services with invalid_target', async () => {
    const response = await exchange('gateway', await idp.userToken(), { audience: ['orders', 'payments'] });
    assert.equal(response.status, 400);
    assert.equal(response.body.error, 'invalid_target');
    assert.equal(response.body.code, InvalidTargetError.code);
    // RFC 6749 §5.2: error_uri names a page describing the error; ours is the code's section of docs/errors.md.
    assert.equal(response.body.error_uri, problemType(InvalidTargetError.code));
  });

  it('refuses an audience that is not a service in the policy with invalid_target', async () => {
    const response = await exchange('gateway', await idp.userToken(), { audience: 'https://backend.example.com' });
    assert.equal(response.body.error, 'invalid_target');
  });

  it('refuses a parameter sent twice (RFC 6749 §3.2)', async () => {
    const response = await sts.token(
      {
        grant_type: TOKEN_EXCHANGE_GRANT,
        subject_token: ['a.b.c', 'd.e.f'],
        subject_token_type: TokenType.accessToken,
        audience: 'orders',
      },
      { authorization: basic('gateway', SECRETS.gateway) },
    );
    assert.equal(response.status, 400);
    assert.deepEqual(
      [response.body.code, response.body.reason, response.body.error],
      [BadRequestError.code, 'duplicate-parameter', 'invalid_request'],
    );
  });

  it('refuses a missing subject_token with invalid_request', async () => {
    const response = await sts.token(
      { grant_type: TOKEN_EXCHANGE_GRANT, subject_token_type: TokenType.accessToken, audience: 'orders' },
      { authorization: basic('gateway', SECRETS.gateway) },
    );
    assert.deepEqual(
      [response.body.code, response.body.reason, response.body.error],
      [BadRequestError.code, 'missing-parameter', 'invalid_request'],
    );
  });

  it('refuses a subject_token_type it does not verify (SAML) with invalid_request', async () => {
    const response = await exchange('gateway', await idp.userToken(), {
      audience: 'orders',
      subject_token_type: TokenType.saml2,
    });
    assert.deepEqual(
      [response.body.code, response.body.reason, response.body.error],
      [BadRequestError.code, 'unsupported-token-type', 'invalid_request'],
    );
  });

  it('refuses a requested_token_type it cannot issue with invalid_request', async () => {
    const response = await exchange('gateway', await idp.userToken(), {
      audience: 'orders',
      requested_token_type: TokenType.refreshToken,
    });
    assert.deepEqual([response.body.code, response.body.reason], [BadRequestError.code, 'unsupported-token-type']);
  });

  it('refuses actor_token without actor_token_type (RFC 8693 §2.1)', async () => {
    const response = await exchange('gateway', await idp.userToken(), { audience: 'orders', actor_token: 'x.y.z' });
    assert.equal(response.body.error, 'invalid_request');
  });

  it('refuses an unknown grant_type with unsupported_grant_type', async () => {
    const response = await sts.token(
      { grant_type: 'password', username: 'alice', password: 'x' },
      { authorization: basic('gateway', SECRETS.gateway) },
    );
    assert.equal(response.status, 400);
    assert.equal(response.body.error, 'unsupported_grant_type');
  });

  it('refuses two client authentication methods at once (RFC 6749 §2.3)', async () => {
    const response = await exchange('gateway', await idp.userToken(), {
      audience: 'orders',
      client_id: 'gateway',
      client_secret: SECRETS.gateway,
    });
    assert.equal(response.body.error, 'invalid_request');
  });

  it('refuses a request without client authentication with invalid_client 401', async () => {
    const response = await sts.token({
      grant_type: TOKEN_EXCHANGE_GRANT,
      subject_token: await idp.userToken(),
      subject_token_type: TokenType.accessToken,
      audience: 'orders',
    });
    assert.equal(response.status, 401);
    assert.equal(response.body.error, 'invalid_client');
    assert.equal(response.headers['www-authenticate'], undefined);
  });

  it('accepts client_secret_post', async () => {
    const response = await sts.token({
      grant_type: TOKEN_EXCHANGE_GRANT,
      subject_token: await idp.userToken(),
      subject_token_type: TokenType.accessToken,
      audience: 'orders',
      client_id: 'gateway',
      client_secret: SECRETS.gateway,
    });
    assert.equal(response.status, 200);
  });

  it('refuses a JSON body: the token endpoint takes form encoding only', async () => {
    const response = await sts.server.app.inject({
      method: 'POST',
      url: '/token',
      headers: { 'content-type': 'application/json', authorization: basic('gateway', SECRETS.gateway) },
      payload: { grant_type: TOKEN_EXCHANGE_GRANT },
    });
    assert.equal(response.statusCode, 400);
    assert.equal(response.json().error, 'invalid_request');
    assert.equal(response.headers['cache-control'], 'no-store');
  });

  it('refuses a private_key_jwt assertion addressed to another server', async () => {
    const response = await sts.token({
      grant_type: TOKEN_EXCHANGE_GRANT,
      subject_token: 'a.b.c',
      subject_token_type: TokenType.accessToken,
      audience: 'payments',
      ...assertionParams(await clientJwt('orders', ordersKey, 'https://elsewhere.example/token')),
    });
    assert.equal(response.status, 401);
    assert.equal(response.body.error, 'invalid_client');
  });

  it('refuses a private_key_jwt assertion that lives longer than five minutes', async () => {
    const response = await sts.token({
      grant_type: TOKEN_EXCHANGE_GRANT,
      subject_token: 'a.b.c',
      subject_token_type: TokenType.accessToken,
      audience: 'payments',
      ...assertionParams(await clientJwt('orders', ordersKey, ISSUER, {}, 3600)),
    });
    assert.equal(response.body.error, 'invalid_client');
  });

  it('honours may_act naming the presenting client (RFC 8693 §4.4)', async () => {
    const response = await exchange('gateway', await idp.userToken({ may_act: { sub: 'gateway' } }), {
      audience: 'orders',
    });
    assert.equal(response.status, 200);
  });

  it('refuses when may_act names another actor (RFC 8693 §4.4)', async () => {
    const response = await exchange('gateway', await idp.userToken({ may_act: { sub: 'admin@example.net' } }), {
      audience: 'orders',
    });
    assert.equal(response.status, 400);
    assert.equal(response.body.code, MayActMismatchError.code);
    assert.equal(response.body.error, 'invalid_request');
  });

  it('accepts an actor_token the client signed itself, and the actor is still the authenticated client', async () => {
    const first = await exchange('gateway', await idp.userToken(), { audience: 'orders' });
    const actorToken = await clientJwt('orders', ordersKey, ISSUER);
    const response = await ordersExchange(first.body.access_token as string, {
      audience: 'payments',
      actor_token: actorToken,
      actor_token_type: TokenType.jwt,
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.deepEqual(decodeJwt(response.body.access_token as string).act, { sub: 'orders', act: { sub: 'gateway' } });
  });

  it('refuses an actor_token naming another party than the authenticated client', async () => {
    const first = await exchange('gateway', await idp.userToken(), { audience: 'orders' });
    const otherKey = await clientKey('other');
    const actorToken = await clientJwt('payments', otherKey, ISSUER);
    const response = await ordersExchange(first.body.access_token as string, {
      audience: 'payments',
      actor_token: actorToken,
      actor_token_type: TokenType.jwt,
    });
    assert.equal(response.status, 400);
    assert.equal(response.body.code, ActorTokenInvalidError.code);
  });

  it('issues a client_credentials token: the service as subject, no act, scope within the registration and the edge', async () => {
    const response = await sts.token(
      { grant_type: 'client_credentials', audience: 'orders' },
      { authorization: basic('billing-job', SECRETS['billing-job']) },
    );
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const claims = await verifyIssued(response.body.access_token as string, 'orders');
    assert.equal(claims.sub, 'billing-job');
    assert.equal(claims.client_id, 'billing-job');
    assert.equal(claims.sub_type, 'service');
    assert.equal(claims.act, undefined);
    for (const scope of String(claims.scope ?? '')
      .split(' ')
      .filter(Boolean))
      assert.ok(['orders:read', 'orders:write', 'payments:charge'].includes(scope));
  });

  it('refuses client_credentials scopes beyond the client registration with invalid_scope', async () => {
    const response = await sts.token(
      { grant_type: 'client_credentials', audience: 'orders', scope: 'admin' },
      { authorization: basic('billing-job', SECRETS['billing-job']) },
    );
    assert.equal(response.body.error, 'invalid_scope');
  });

  it('refuses client_credentials for an edge the policy lacks', async () => {
    const response = await sts.token(
      { grant_type: 'client_credentials', audience: 'payments' },
      { authorization: basic('billing-job', SECRETS['billing-job']) },
    );
    assert.equal(response.status, 400);
    assert.equal(response.body.error, 'invalid_target');
    assert.deepEqual([response.body.code, response.body.reason], [PolicyDeniedError.code, 'no_edge']);
  });

  it('lets a service token be exchanged further without a user, as the policy allows', async () => {
    const service = await sts.token(
      { grant_type: 'client_credentials', audience: 'orders' },
      { authorization: basic('billing-job', SECRETS['billing-job']) },
    );
    // payments requires a user and a chain from gateway: refused, naming the rule.
    const response = await ordersExchange(service.body.access_token as string, { audience: 'payments' });
    assert.equal(response.body.error, 'invalid_target');
    assert.match(String(response.body.error_description), /payments\.accepts/);
  });

  it('publishes RFC 8414 metadata naming the token endpoint, jwks, grants and auth methods', async () => {
    const metadata = (
      await sts.server.app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' })
    ).json();
    assert.equal(metadata.issuer, ISSUER);
    assert.equal(metadata.token_endpoint, `${ISSUER}/token`);
    assert.equal(metadata.jwks_uri, `${ISSUER}/jwks`);
    assert.deepEqual(metadata.grant_types_supported, [TOKEN_EXCHANGE_GRANT, 'client_credentials']);
    assert.deepEqual(metadata.token_endpoint_auth_methods_supported, [
      'client_secret_basic',
      'client_secret_post',
      'private_key_jwt',
    ]);
  });

  it("serves the same metadata under OpenID Connect Discovery's name, /.well-known/openid-configuration, which OAuth client libraries ask first", async () => {
    const oauth = await sts.server.app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' });
    const openid = await sts.server.app.inject({ method: 'GET', url: '/.well-known/openid-configuration' });
    assert.equal(openid.statusCode, 200);
    assert.deepEqual(openid.json(), oauth.json());
    assert.equal('id_token_signing_alg_values_supported' in openid.json(), false, 'not an OpenID Provider');
  });

  it('omits scope from the response and the token when no scope is granted (RFC 6749 §3.3 has no empty scope)', async () => {
    // orders:read is named on gateway → orders only: nothing billing-job → orders or beyond can use it.
    const response = await sts.token(
      { grant_type: 'client_credentials', audience: 'orders', scope: 'orders:read' },
      { authorization: basic('billing-job', SECRETS['billing-job']) },
    );
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal('scope' in response.body, false, JSON.stringify(response.body));
    assert.equal('scope' in (await verifyIssued(response.body.access_token as string, 'orders')), false);
  });

  it('answers 405 with Allow: POST to GET /token and every other method but POST (RFC 6749 §3.2)', async () => {
    for (const method of ['GET', 'PUT', 'DELETE', 'PATCH'] as const) {
      const response = await sts.server.app.inject({
        method,
        url: `/token?grant_type=client_credentials&client_id=gateway&client_secret=${SECRETS.gateway}`,
      });
      assert.equal(response.statusCode, 405, method);
      assert.equal(response.headers.allow, 'POST');
      assert.equal(response.json().error, 'invalid_request');
      assert.equal(response.json().code, MethodNotAllowedError.code);
    }
  });

  it('is live and ready once it holds a policy', async () => {
    assert.equal((await sts.server.app.inject({ method: 'GET', url: '/livez' })).statusCode, 200);
    assert.equal((await sts.server.app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
  });

  it('answers unknown paths with problem+json', async () => {
    const response = await sts.server.app.inject({ method: 'GET', url: '/nope' });
    assert.equal(response.statusCode, 404);
    assert.match(String(response.headers['content-type']), /application\/problem\+json/);
    assert.equal(response.json().code, NotFoundError.code);
    assert.equal(response.json().type, problemType(NotFoundError.code));
  });

  it('writes every grant, policy refusal and error answer as an audit line the one parser reads, with the status the client got', () => {
    const lines = auditLinesOf(sts.logs.join(''));
    const issued = lines.flatMap((l) => (l.audit.event === 'token_issued' ? [l.audit] : []));
    assert.ok(
      issued.some((e) => e.grant === 'token-exchange' && e.status === 200 && Number.isInteger(e.policyVersion)),
    );
    assert.ok(issued.some((e) => e.grant === 'client_credentials' && e.subjectIssuer !== undefined));
    // client_credentials for an edge the policy lacks: the gate's decision, then the error answer, both with what the client got.
    assert.ok(
      lines.some(
        (l) =>
          l.audit.event === 'token_decision' &&
          l.audit.decision === 'deny' &&
          l.audit.error === 'invalid_target' &&
          l.audit.status === 400,
      ),
    );
    assert.ok(
      lines.some(
        (l) =>
          l.audit.event === 'token_refused' &&
          l.audit.error === 'invalid_client' &&
          l.audit.status === 401 &&
          l.audit.path === '/token',
      ),
    );
    assert.ok(
      lines.some(
        (l) =>
          l.audit.event === 'token_refused' && l.audit.code === MethodNotAllowedError.code && l.audit.status === 405,
      ),
    );
    assert.ok(lines.every((l) => l.audit.component === 'sts' && l.service === 'sts-test'));
  });

  it('never writes a token or a secret into its logs', () => {
    const text = sts.logs.join('');
    assert.ok(text.includes('token issued'));
    assert.doesNotMatch(text, /eyJ[A-Za-z0-9_-]{10,}\./);
    for (const secret of Object.values(SECRETS)) assert.ok(!text.includes(secret));
  });
});
