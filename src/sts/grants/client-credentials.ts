/**
 * `client_credentials` (RFC 6749 §4.4): a service's own identity token for
 * calls with no user. `sub` = `client_id` = the service, no `act`, a fresh
 * `txn`, and a scope within what the client is registered for and what the
 * edge to the target can use.
 */
import { type BatonAccessTokenClaims, formatScope, issSub, parseScope } from '../../core/claims.ts';
import { TokenType } from '../../core/token-types.ts';
import { InvalidScopeError } from '../errors.ts';
import { randomId } from '../mint.ts';
import { randomTxn } from '../../core/txn.ts';
import type { StsGrantAudit } from '../../telemetry/audit-event.ts';
import { recordIssuanceRequest } from '../../telemetry/sts-span.ts';
import type { GrantHandler } from './grant-context.ts';
import { issueToken, usableScope } from './issue.ts';
import { currentPolicy, gateTokenRequest } from './policy-gate.ts';

export const clientCredentialsGrant: GrantHandler = async (params, { client, certificateThumbprint }, context) => {
  const { policy, version: policyVersion } = currentPolicy(context.policy);
  const target = context.audiences.resolve(
    { audiences: params.all('audience'), resources: params.all('resource') },
    (name) => policy.hasService(name),
  );
  const requested = params.has('scope') ? parseScope(params.get('scope')) : undefined;
  if (requested !== undefined) {
    const wider = [...requested].filter((s) => !client.scopes.has(s));
    if (wider.length > 0)
      throw new InvalidScopeError(
        `expected scopes registered for client ${client.id}, got ${wider.length} more: ${formatScope(wider).slice(0, 200)}`,
      );
  }
  const granted = requested ?? client.scopes;
  const chain = [client.id];
  const txn = randomTxn();
  const audit: StsGrantAudit = {
    grant: 'client_credentials',
    txn,
    client: client.id,
    target,
    chain,
    subjectIssuer: context.issuer,
    policyVersion,
  };
  recordIssuanceRequest(
    { grant: audit.grant, client: client.id, chain, target, txn, subject: client.id, subjectIssuer: context.issuer },
    context.subjectPseudonym,
  );
  const decision = gateTokenRequest(
    policy,
    { chain, target, scopes: granted, user: false, subjectIssuer: context.issuer },
    context.maxChainDepth,
    context.logger,
    audit,
  );
  const scope = usableScope(policy, client.id, target, granted, decision);
  const nowSec = Math.floor(context.now() / 1000);
  const exp = nowSec + context.tokenTtlSeconds;
  const claims: BatonAccessTokenClaims = {
    iss: context.issuer,
    sub: client.id,
    sub_id: issSub(context.issuer, client.id),
    aud: target,
    client_id: client.id,
    exp,
    iat: nowSec,
    jti: randomId(),
    ...(scope === '' ? {} : { scope }),
    txn,
    sub_type: 'service',

    // RFC 8705 §3: bound to the certificate the client presented, usable only by the holder of its key.
    ...(certificateThumbprint === undefined ? {} : { cnf: { 'x5t#S256': certificateThumbprint } }),
  };
  return await issueToken(context, claims, nowSec, { decision, audit, issuedTokenType: TokenType.accessToken });
};
