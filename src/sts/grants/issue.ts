/**
 * The tail both grants share: narrowing the scope to what the rest of the
 * chain can use, then minting, the audit line and the RFC 8693 §2.2.1 /
 * RFC 6749 §5.1 response.
 */
import { type BatonAccessTokenClaims, formatScope } from '../../core/claims.ts';
import type { CompiledPolicy, Decision } from '../../policy/language/decision.ts';
import { type StsGrantAudit, writeAuditEvent } from '../../telemetry/audit-event.ts';
import { recordIssuanceOutcome } from '../../telemetry/sts-span.ts';
import { TokenExpiredError } from '../../token/errors.ts';
import { SubjectTokenInvalidError } from '../errors.ts';
import type { GrantContext, TokenResponse } from './grant-context.ts';

/**
 * The scopes of `candidates` named on the edge client→target or on any edge
 * reachable from target (DESIGN.md, "The flow"). With no edge at all nothing
 * is usable, unless the refusal is only observed (shadow mode), in which
 * case the token is minted without narrowing.
 */
export function usableScope(
  policy: CompiledPolicy,
  client: string,
  target: string,
  candidates: Iterable<string>,
  decision: Decision,
): string {
  const usable = policy.usableScopes(client, target);
  return formatScope([...candidates].filter((s) => (usable === undefined ? !decision.allowed : usable.has(s))));
}

export async function issueToken(
  context: GrantContext,
  claims: BatonAccessTokenClaims,
  nowSec: number,
  record: { readonly decision: Decision; readonly audit: StsGrantAudit; readonly issuedTokenType: string },
): Promise<TokenResponse> {
  // A token born expired answers expires_in ≤ 0 (RFC 6749 §5.1 wants a lifetime): never mint one. Only a subject token
  // running out can cause it (client credentials mint tokenTtlSeconds ≥ 10 ahead): the subject token has expired.
  if (claims.exp <= nowSec)
    throw new SubjectTokenInvalidError(
      `expected a token lifetime above 0 s, got ${claims.exp - nowSec} s: the subject token runs out`,
      { reason: TokenExpiredError.code },
    );
  const accessToken = await context.mint(claims);
  const scope = claims.scope ?? '';
  const { decision } = record;
  writeAuditEvent(context.logger, {
    ...record.audit,
    event: 'token_issued',
    component: 'sts',
    rule: decision.rule,
    decision: decision.allowed ? 'allow' : 'would_deny',
    cause: decision.allowed ? undefined : decision.cause,
    scope: scope === '' ? undefined : scope,
    exp: claims.exp,
    jti: claims.jti,
    status: 200,
  });
  recordIssuanceOutcome({ exchangeOutcome: 'issued' });
  const response = {
    access_token: accessToken,
    issued_token_type: record.issuedTokenType,
    token_type: 'Bearer' as const,
    expires_in: claims.exp - nowSec,
  };
  // RFC 6749 §3.3: a scope is one or more scope tokens, so none granted means no scope member, not "".
  return scope === '' ? response : { ...response, scope };
}
