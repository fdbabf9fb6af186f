/**
 * The STS grant handlers called directly, without a server: what each one
 * mints (RFC 8693 token exchange, RFC 6749 §4.4 client credentials) and
 * what it refuses, with stand-ins only for the parts the server wires in
 * (subject-token verification, actor tokens, signing). The policy, the
 * audience resolver, the form parser and the logger are the real ones.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BatonAccessTokenClaims } from '../../../src/core/claims.ts';
import { TokenType } from '../../../src/core/token-types.ts';
import { createAudienceResolver } from '../../../src/sts/audience.ts';
import type { AuthenticatedClient } from '../../../src/sts/client-auth.ts';
import { parseTokenRequestForm } from '../../../src/sts/form.ts';
import { clientCredentialsGrant } from '../../../src/sts/grants/client-credentials.ts';
import type { GrantContext } from '../../../src/sts/grants/grant-context.ts';
import { issueToken } from '../../../src/sts/grants/issue.ts';
import { tokenExchangeGrant } from '../../../src/sts/grants/token-exchange.ts';
import { BadRequestError } from '../../../src/core/errors.ts';
import { PolicyDeniedError } from '../../../src/policy/language/errors.ts';
import { TokenExpiredError } from '../../../src/token/errors.ts';
import {
  ExternalTokenNotAtEntrypointError,
  InvalidScopeError,
  InvalidTargetError,
  MayActMismatchError,
  SubjectTokenInvalidError,
} from '../../../src/sts/errors.ts';
import type { VerifiedToken } from '../../../src/token/verified-token.ts';
import { captureLogs, type LogCapture } from '../../helpers/logs.ts';
import { callGraph, compileTestPolicy } from '../../helpers/policy.ts';

const ISSUER = 'https://sts.test';
const IDP = 'https://idp.test';
const NOW_SEC = 1_900_000_000;

const POLICY = compileTestPolicy(
  callGraph(`
gateway: { entrypoint: true }
orders:
  accepts:
    - { name: from-gateway, from: gateway, scopes: "shop" }
payments:
  accepts:
    - { name: charge, from: orders, origins: [gateway], scopes: "pay" }
    - { name: reconcile, from: billing, user: none }
billing: {}
`),
);

function subject(overrides: Partial<VerifiedToken> = {}): VerifiedToken {
  return {
    claims: {},
    issuer: ISSUER,
    kind: 'mesh',
    subject: 'alice',
    subjectIssuer: IDP,
    user: true,
    chain: ['gateway'],
    scopes: new Set(['shop', 'pay', 'admin']),
    txn: 'txn-1',
    acr: 'mfa',
    authTime: NOW_SEC - 60,
    clientId: 'gateway',
    expiresAt: NOW_SEC + 120,
    jti: 'j1',
    confirmation: undefined,
    ...overrides,
  };
}

function clientOf(id: string, scopes: string[] = [], certificateThumbprint?: string): AuthenticatedClient {
  return {
    client: {
      id,
      secret: undefined,
      keys: undefined,
      scopes: new Set(scopes),
      serviceAccount: undefined,
      tlsClientAuthSanUri: undefined,
      certificateId: undefined,
    },
    method: 'client_secret_basic',
    ...(certificateThumbprint === undefined ? {} : { certificateThumbprint }),
  };
}

interface Harness {
  readonly context: GrantContext;
  readonly minted: BatonAccessTokenClaims[];
  readonly logs: LogCapture;
}

/** A grant context whose subject tokens are looked up by name, and whose minter records the claims it signs. */
function harness(subjects: Record<string, VerifiedToken> = {}, overrides: Partial<GrantContext> = {}): Harness {
  const minted: BatonAccessTokenClaims[] = [];
  const logs = captureLogs('baton-sts');
  const context: GrantContext = {
    issuer: ISSUER,
    tokenTtlSeconds: 300,
    maxChainDepth: undefined,
    policy: () => ({ policy: POLICY, version: 7 }),
    audiences: createAudienceResolver({}),
    subjectTokens: {
      async verify(token) {
        const found = subjects[token];
        if (found === undefined) throw new Error('unknown test subject token');
        return found;
      },
      updateJwks() {},
      close() {},
    },
    actorTokens: { verify: async () => 'client_jwt' },
    mint: async (claims) => {
      minted.push(claims);
      return `minted-${minted.length}`;
    },
    logger: logs.logger,
    now: () => NOW_SEC * 1000,
    ...overrides,
  };
  return { context, minted, logs };
}

const form = (fields: Record<string, string>) => parseTokenRequestForm(new URLSearchParams(fields).toString());
const exchangeForm = (fields: Record<string, string> = {}) =>
  form({
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token: 'alice-at-orders',
    subject_token_type: TokenType.accessToken,
    audience: 'payments',
    ...fields,
  });

async function refusal(run: Promise<unknown>): Promise<string | undefined> {
  try {
    await run;
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code;
  }
}

/** The code and reason a grant refused with: `CODE reason`. */
async function refusalWithReason(run: Promise<unknown>): Promise<string | undefined> {
  try {
    await run;
    return undefined;
  } catch (error) {
    const { code, reason } = error as { code?: string; reason?: string };
    return `${code} ${reason}`;
  }
}

describe('token exchange grant (RFC 8693)', () => {
  it('mints for the one target, keeps the subject, names the client as the newest actor, and never outlives the subject token', async () => {
    const { context, minted } = harness({ 'alice-at-orders': subject() });
    const response = await tokenExchangeGrant(exchangeForm(), clientOf('orders'), context);
    assert.equal(minted.length, 1);
    const claims = minted[0] as BatonAccessTokenClaims;
    assert.equal(claims.iss, ISSUER);
    assert.equal(claims.sub, 'alice');
    assert.deepEqual(claims.sub_id, { format: 'iss_sub', iss: IDP, sub: 'alice' });
    assert.equal(claims.aud, 'payments');
    assert.equal(claims.client_id, 'orders');
    // RFC 8693 §4.1: the current actor outermost, prior actors nested.
    assert.deepEqual(claims.act, { sub: 'orders', act: { sub: 'gateway' } });
    assert.equal(claims.txn, 'txn-1');
    assert.equal(claims.sub_type, 'user');
    assert.equal(claims.acr, 'mfa');
    assert.equal(claims.auth_time, NOW_SEC - 60);
    assert.equal(claims.exp, NOW_SEC + 120, 'capped at the subject token exp, not now + ttl');
    assert.equal(claims.cnf, undefined);
    assert.deepEqual(response, {
      access_token: 'minted-1',
      issued_token_type: TokenType.accessToken,
      token_type: 'Bearer',
      expires_in: 120,
      scope: 'pay',
    });
  });

  it('narrows the scope to what the rest of the chain can use: admin is on no edge from orders onwards', async () => {
    const { context, minted } = harness({ 'alice-at-orders': subject() });
    await tokenExchangeGrant(exchangeForm(), clientOf('orders'), context);
    assert.equal(minted[0]?.scope, 'pay');
  });

  it('binds the token to the client certificate presented (RFC 8705 §3)', async () => {
    const { context, minted } = harness({ 'alice-at-orders': subject() });
    await tokenExchangeGrant(exchangeForm(), clientOf('orders', [], 'T'.repeat(43)), context);
    assert.deepEqual(minted[0]?.cnf, { 'x5t#S256': 'T'.repeat(43) });
  });

  it('refuses a scope wider than the subject token grants as invalid_scope', async () => {
    const { context, minted } = harness({ 'alice-at-orders': subject() });
    assert.equal(
      await refusal(tokenExchangeGrant(exchangeForm({ scope: 'pay refund' }), clientOf('orders'), context)),
      InvalidScopeError.code,
    );
    assert.equal(minted.length, 0);
  });

  it('refuses a request without subject_token, or with actor_token but no actor_token_type (RFC 8693 §2.1)', async () => {
    const { context } = harness({ 'alice-at-orders': subject() });
    const withoutSubject = form({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token_type: TokenType.accessToken,
      audience: 'payments',
    });
    assert.equal(
      await refusalWithReason(tokenExchangeGrant(withoutSubject, clientOf('orders'), context)),
      `${BadRequestError.code} missing-parameter`,
    );
    assert.equal(
      await refusalWithReason(tokenExchangeGrant(exchangeForm({ actor_token: 'a' }), clientOf('orders'), context)),
      `${BadRequestError.code} missing-parameter`,
    );
  });

  it('refuses subject and requested token types it does not handle', async () => {
    const { context } = harness({ 'alice-at-orders': subject() });
    assert.equal(
      await refusalWithReason(
        tokenExchangeGrant(exchangeForm({ subject_token_type: TokenType.idToken }), clientOf('orders'), context),
      ),
      `${BadRequestError.code} unsupported-token-type`,
    );
    assert.equal(
      await refusalWithReason(
        tokenExchangeGrant(exchangeForm({ requested_token_type: TokenType.refreshToken }), clientOf('orders'), context),
      ),
      `${BadRequestError.code} unsupported-token-type`,
    );
  });

  it('refuses a subject token already expired, even one the verifier let through within its clock tolerance', async () => {
    const { context, minted } = harness({ 'alice-at-orders': subject({ expiresAt: NOW_SEC }) });
    assert.equal(
      await refusalWithReason(tokenExchangeGrant(exchangeForm(), clientOf('orders'), context)),
      `${SubjectTokenInvalidError.code} ${TokenExpiredError.code}`,
    );
    assert.equal(minted.length, 0);
  });

  it('takes a token from an external identity provider only from an entrypoint', async () => {
    const external = subject({
      kind: 'external',
      issuer: IDP,
      chain: [],
      txn: undefined,
      clientId: undefined,
      scopes: new Set(['shop']),
    });
    const { context, minted } = harness({ 'from-idp': external });
    assert.equal(
      await refusal(tokenExchangeGrant(exchangeForm({ subject_token: 'from-idp' }), clientOf('orders'), context)),
      ExternalTokenNotAtEntrypointError.code,
    );
    await tokenExchangeGrant(
      exchangeForm({ subject_token: 'from-idp', audience: 'orders' }),
      clientOf('gateway'),
      context,
    );
    assert.deepEqual(minted[0]?.act, { sub: 'gateway' });
    assert.match(minted[0]?.txn ?? '', /.+/, 'a txn is minted for an external subject');
  });

  it('honours may_act: only the party it names may act for the subject (RFC 8693 §4.4)', async () => {
    const { context } = harness({
      'for-billing': subject({ claims: { may_act: { sub: 'billing' } } }),
      'for-orders': subject({ claims: { may_act: { sub: 'orders', iss: ISSUER } } }),
      'other-issuer': subject({ claims: { may_act: { sub: 'orders', iss: 'https://elsewhere.test' } } }),
    });
    assert.equal(
      await refusal(tokenExchangeGrant(exchangeForm({ subject_token: 'for-billing' }), clientOf('orders'), context)),
      MayActMismatchError.code,
    );
    assert.equal(
      await refusal(tokenExchangeGrant(exchangeForm({ subject_token: 'other-issuer' }), clientOf('orders'), context)),
      MayActMismatchError.code,
    );
    assert.equal(
      await refusal(tokenExchangeGrant(exchangeForm({ subject_token: 'for-orders' }), clientOf('orders'), context)),
      undefined,
    );
  });

  it('mints nothing for an edge the policy forbids, and nothing for a target it does not know', async () => {
    const { context, minted } = harness({ 'alice-at-orders': subject() });
    assert.equal(
      await refusal(tokenExchangeGrant(exchangeForm({ audience: 'billing' }), clientOf('orders'), context)),
      PolicyDeniedError.code,
    );
    assert.equal(
      await refusal(tokenExchangeGrant(exchangeForm({ audience: 'nowhere' }), clientOf('orders'), context)),
      InvalidTargetError.code,
    );
    assert.equal(minted.length, 0);
  });
});

describe('client credentials grant (RFC 6749 §4.4)', () => {
  const ccForm = (fields: Record<string, string> = {}) =>
    form({ grant_type: 'client_credentials', audience: 'payments', ...fields });

  it('mints a service token: sub and client_id the client, no act, a fresh txn, sub_type service', async () => {
    const { context, minted } = harness();
    const response = await clientCredentialsGrant(ccForm(), clientOf('billing', ['ledger']), context);
    const claims = minted[0] as BatonAccessTokenClaims;
    assert.equal(claims.sub, 'billing');
    assert.equal(claims.client_id, 'billing');
    assert.deepEqual(claims.sub_id, { format: 'iss_sub', iss: ISSUER, sub: 'billing' });
    assert.equal(claims.act, undefined);
    assert.equal(claims.sub_type, 'service');
    assert.equal(claims.exp, NOW_SEC + 300);
    assert.match(claims.txn, /.+/);
    // RFC 6749 §3.3: no scope usable on the edge means no scope member, not "".
    assert.equal(claims.scope, undefined);
    assert.equal('scope' in response, false);
  });

  it('refuses a scope the client is not registered for as invalid_scope', async () => {
    const { context, minted } = harness();
    assert.equal(
      await refusal(clientCredentialsGrant(ccForm({ scope: 'ledger root' }), clientOf('billing', ['ledger']), context)),
      InvalidScopeError.code,
    );
    assert.equal(minted.length, 0);
  });

  it('refuses an edge the policy does not declare for a service caller', async () => {
    const { context, minted } = harness();
    assert.equal(await refusal(clientCredentialsGrant(ccForm(), clientOf('orders'), context)), PolicyDeniedError.code);
    assert.equal(minted.length, 0);
  });
});

describe('issuing tail', () => {
  it('never mints a token born expired (RFC 6749 §5.1 wants a lifetime)', async () => {
    const { context, minted } = harness();
    const claims: BatonAccessTokenClaims = {
      iss: ISSUER,
      sub: 'billing',
      sub_id: { format: 'iss_sub', iss: ISSUER, sub: 'billing' },
      aud: 'payments',
      client_id: 'billing',
      exp: NOW_SEC,
      iat: NOW_SEC,
      jti: 'j',
      txn: 't',
      sub_type: 'service',
    };
    const decision = POLICY.decide({ chain: ['billing'], target: 'payments', scopes: new Set(), user: false });
    assert.equal(
      await refusalWithReason(
        issueToken(context, claims, NOW_SEC, {
          decision,
          audit: {
            grant: 'client_credentials',
            client: 'billing',
            target: 'payments',
            chain: ['billing'],
            txn: 't',
            policyVersion: 7,
          },
          issuedTokenType: TokenType.accessToken,
        }),
      ),
      `${SubjectTokenInvalidError.code} ${TokenExpiredError.code}`,
    );
    assert.equal(minted.length, 0);
  });

  it('writes one audit line per token issued, with the rule and jti, and never the token', async () => {
    const { context, logs } = harness({ 'alice-at-orders': subject() });
    await tokenExchangeGrant(exchangeForm(), clientOf('orders'), context);
    const issued = logs.lines.filter((l) => l.event === 'token_issued');
    assert.equal(issued.length, 1);
    assert.equal(issued[0]?.component, 'sts');
    assert.equal(issued[0]?.rule, 'payments.accepts.charge');
    assert.equal(typeof issued[0]?.jti, 'string');
    assert.doesNotMatch(logs.raw.join(''), /minted-1|alice-at-orders/);
  });
});
