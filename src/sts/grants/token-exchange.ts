/**
 * RFC 8693 token exchange, the mesh's delegation step. The new token keeps
 * the subject (`sub`, `sub_type`, `txn`, `acr`, `auth_time`), is addressed
 * to exactly one target service, names the authenticated client as
 * `client_id` and as the newest actor in `act`, carries a scope no wider
 * than the subject token's and narrowed to what the rest of the chain can
 * use, and expires no later than the subject token.
 */
import { buildAct } from '../../core/act-chain.ts';
import { type BatonAccessTokenClaims, formatScope, issSub, parseScope } from '../../core/claims.ts';
import { TokenType } from '../../core/token-types.ts';
import { BadRequestError } from '../../core/errors.ts';
import { TokenExpiredError } from '../../token/errors.ts';
import {
  ExternalTokenNotAtEntrypointError,
  InvalidScopeError,
  MayActMismatchError,
  SubjectTokenInvalidError,
} from '../errors.ts';
import type { VerifiedToken } from '../../token/verified-token.ts';
import { randomTxn } from '../../core/txn.ts';
import { randomId } from '../mint.ts';
import type { StsGrantAudit } from '../../telemetry/audit-event.ts';
import { recordIssuanceRequest } from '../../telemetry/sts-span.ts';
import type { GrantHandler } from './grant-context.ts';
import { issueToken, usableScope } from './issue.ts';
import { currentPolicy, gateTokenRequest } from './policy-gate.ts';

// The JWT access tokens baton verifies; anything else (SAML, refresh, id_token) is not a delegation subject here.
const SUBJECT_TOKEN_TYPES: ReadonlySet<string> = new Set([TokenType.accessToken, TokenType.jwt]);
const ISSUABLE_TOKEN_TYPES: ReadonlySet<string> = new Set([TokenType.accessToken, TokenType.jwt]);

export const tokenExchangeGrant: GrantHandler = async (params, { client, certificateThumbprint }, context) => {
  // RFC 8693 §2.1: subject_token and subject_token_type are REQUIRED.
  const subjectToken = required(params.get('subject_token'), 'subject_token');
  const subjectTokenType = required(params.get('subject_token_type'), 'subject_token_type');
  if (!SUBJECT_TOKEN_TYPES.has(subjectTokenType)) {
    throw new BadRequestError(
      `expected subject_token_type ${TokenType.accessToken} or ${TokenType.jwt}, got another type`,
      { reason: 'unsupported-token-type' },
    );
  }
  const actorToken = params.get('actor_token');
  const actorTokenType = params.get('actor_token_type');
  // RFC 8693 §2.1: actor_token_type is REQUIRED with actor_token and MUST NOT be sent without it.
  if ((actorToken === undefined) !== (actorTokenType === undefined)) {
    throw new BadRequestError('expected actor_token and actor_token_type together or not at all', {
      reason: 'missing-parameter',
    });
  }
  const requestedTokenType = params.get('requested_token_type') ?? TokenType.accessToken;
  if (!ISSUABLE_TOKEN_TYPES.has(requestedTokenType)) {
    throw new BadRequestError(
      `expected requested_token_type ${TokenType.accessToken} or ${TokenType.jwt}, got another type`,
      { reason: 'unsupported-token-type' },
    );
  }

  const { policy, version: policyVersion } = currentPolicy(context.policy);
  const target = context.audiences.resolve(
    { audiences: params.all('audience'), resources: params.all('resource') },
    (name) => policy.hasService(name),
  );
  const subject = await context.subjectTokens.verify(subjectToken, client.id);
  // The clock tolerance lets a verifier absorb skew; it does not make an expired token worth delegating.
  // RFC 8693 §2.2.2: an unacceptable subject token is invalid_request.
  if (subject.expiresAt <= Math.floor(context.now() / 1000))
    throw new SubjectTokenInvalidError('expected a subject token whose exp is in the future, got one already expired', {
      reason: TokenExpiredError.code,
    });
  if (actorToken !== undefined) await context.actorTokens.verify(actorToken, actorTokenType as string, client);

  if (subject.kind === 'external' && !policy.isEntrypoint(client.id)) {
    throw new ExternalTokenNotAtEntrypointError(
      `expected a token from an external identity provider only at an entrypoint, got it from ${client.id}`,
    );
  }
  checkMayAct(subject, client.id, context.issuer);

  const requested = params.has('scope') ? parseScope(params.get('scope')) : undefined;
  if (requested !== undefined) {
    const wider = [...requested].filter((s) => !subject.scopes.has(s));
    // RFC 8693 §2.2.2 / RFC 6749 §5.2: a scope exceeding what the subject token grants is invalid_scope.
    if (wider.length > 0)
      throw new InvalidScopeError(
        `expected scopes within the subject token's, got ${wider.length} more: ${formatScope(wider).slice(0, 200)}`,
      );
  }

  const chain = [...(subject.kind === 'mesh' ? subject.chain : []), client.id];
  // Carried from a mesh token; for an external token, derived from it (src/core/txn.ts) as the entry sidecar does.
  const txn = subject.txn ?? randomTxn();
  const audit: StsGrantAudit = {
    grant: 'token-exchange',
    txn,
    client: client.id,
    target,
    chain,
    subjectKind: subject.kind,
    issuer: subject.issuer,
    subjectIssuer: subject.subjectIssuer,
    policyVersion,
  };
  recordIssuanceRequest(
    {
      grant: audit.grant,
      client: client.id,
      chain,
      target,
      txn,
      subject: subject.subject,
      subjectIssuer: subject.subjectIssuer,
    },
    context.subjectPseudonym,
  );
  const decision = gateTokenRequest(
    policy,
    {
      chain,
      target,
      scopes: subject.scopes,
      acr: subject.acr,
      user: subject.user,
      subjectIssuer: subject.subjectIssuer,
    },
    context.maxChainDepth,
    context.logger,
    audit,
  );

  const scope = usableScope(
    policy,
    client.id,
    target,
    [...(requested ?? subject.scopes)].filter((s) => subject.scopes.has(s)),
    decision,
  );
  const nowSec = Math.floor(context.now() / 1000);
  // Never outlive the subject token: a revoked session must not be prolonged by exchange.
  const exp = Math.min(nowSec + context.tokenTtlSeconds, subject.expiresAt);
  const act = buildAct(chain);
  const claims: BatonAccessTokenClaims = {
    iss: context.issuer,
    sub: subject.subject,
    sub_id: issSub(subject.subjectIssuer, subject.subject),
    aud: target,
    client_id: client.id,
    exp,
    iat: nowSec,
    jti: randomId(),
    ...(scope === '' ? {} : { scope }),
    ...(act === undefined ? {} : { act }),
    txn,
    sub_type: subject.user ? 'user' : 'service',
    ...(subject.acr === undefined ? {} : { acr: subject.acr }),
    ...(subject.authTime === undefined ? {} : { auth_time: subject.authTime }),

    // RFC 8705 §3: bound to the certificate the client presented, usable only by the holder of its key.
    ...(certificateThumbprint === undefined ? {} : { cnf: { 'x5t#S256': certificateThumbprint } }),
  };
  return await issueToken(context, claims, nowSec, { decision, audit, issuedTokenType: requestedTokenType });
};

function required(value: string | undefined, name: string): string {
  if (value === undefined)
    throw new BadRequestError(`expected the parameter ${name}, got none`, { reason: 'missing-parameter' });
  return value;
}

/** RFC 8693 §4.4: when the subject token names who may act for it, only that party may. */
function checkMayAct(subject: VerifiedToken, clientId: string, issuer: string): void {
  const mayAct = subject.claims.may_act;
  if (mayAct === undefined) return;
  if (typeof mayAct !== 'object' || mayAct === null || Array.isArray(mayAct)) {
    throw new MayActMismatchError('expected may_act to be a JSON object');
  }
  const { sub, iss } = mayAct as { sub?: unknown; iss?: unknown };
  if (sub !== clientId || (iss !== undefined && iss !== issuer)) {
    throw new MayActMismatchError(`expected may_act to name the authenticated client ${clientId}, got another party`);
  }
}
