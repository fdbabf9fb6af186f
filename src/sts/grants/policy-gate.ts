/**
 * The call-graph policy check before minting. The STS asks about the edge
 * only (no method or path: the callee's sidecar checks routes). A denial in
 * `shadow` mode is logged as `would_deny` and the token is minted anyway;
 * in `enforce` mode it is refused with the OAuth error its cause maps to.
 */
import type { PolicySnapshot } from '../../policy/distribution/source.ts';
import type { CompiledPolicy, Decision, DecisionInput, Deny } from '../../policy/language/decision.ts';
import type { Logger } from 'pino';
import { type HttpError, NotReadyError } from '../../core/errors.ts';
import { type StsGrantAudit, writeAuditEvent } from '../../telemetry/audit-event.ts';
import { recordIssuanceOutcome } from '../../telemetry/sts-span.ts';
import { PolicyDeniedError } from '../../policy/language/errors.ts';
import { InvalidScopeError, toOAuthError, tokenEndpointStatus } from '../errors.ts';

/** The policy in force and its version, read once for the whole request. */
export function currentPolicy(policy: () => PolicySnapshot | undefined): PolicySnapshot {
  const current = policy();
  if (current === undefined)
    throw new NotReadyError('expected a call-graph policy, have none yet', { reason: 'policy' });
  return current;
}

/** Effective depth cap: the policy's, lowered by the operator's `maxChainDepth`. */
export function depthCap(policy: CompiledPolicy, maxChainDepth: number | undefined): number {
  return maxChainDepth === undefined ? policy.maxDepth : Math.min(policy.maxDepth, maxChainDepth);
}

/** The STS's check of a token request against the call graph, before minting: decides, audits a refusal, and throws it. */
export function gateTokenRequest(
  policy: CompiledPolicy,
  input: DecisionInput,
  maxChainDepth: number | undefined,
  logger: Logger,
  audit: StsGrantAudit,
): Decision {
  const cap = depthCap(policy, maxChainDepth);
  if (input.chain.length > cap) {
    const deny: Deny = {
      allowed: false,
      rule: 'spec.maxDepth' as Deny['rule'],
      cause: 'depth_exceeded',
      mode: 'enforce',
      reason: `expected at most ${cap} services in the chain, got ${input.chain.length}`,
    };
    recordIssuanceOutcome({ rule: deny.rule, decision: 'deny' });
    throw refuse(deny, logger, audit);
  }
  const decision = policy.decide(input);
  recordIssuanceOutcome({
    rule: decision.rule,
    decision: decision.allowed ? 'allow' : decision.mode === 'shadow' ? 'would_deny' : 'deny',
  });
  if (decision.allowed) return decision;
  if (decision.mode === 'shadow') {
    writeAuditEvent(logger, {
      ...audit,
      event: 'token_decision',
      component: 'sts',
      rule: decision.rule,
      decision: 'would_deny',
      cause: decision.cause,
      reason: decision.reason,
    });
    return decision;
  }
  throw refuse(decision, logger, audit);
}

/** The refusal for a denial, audited with the status and OAuth error the client will get. */
function refuse(deny: Deny, logger: Logger, audit: StsGrantAudit): HttpError {
  const error = refusal(deny);
  writeAuditEvent(logger, {
    ...audit,
    event: 'token_decision',
    component: 'sts',
    rule: deny.rule,
    decision: 'deny',
    cause: deny.cause,
    reason: deny.reason,
    status: tokenEndpointStatus(error),
    error: toOAuthError(error).error,
  });
  return error;
}

/**
 * A policy refusal is the sidecar's BATON_POLICY_DENIED, its cause the reason; the token endpoint says it as RFC 8693
 * §2.2.2 does (src/sts/errors.ts: invalid_target, unauthorized_client for not_entrypoint). A scope the edge does not
 * allow is invalid_scope, as a scope wider than the subject token's is: the client asks for less either way.
 */
function refusal(deny: Deny): HttpError {
  const detail = `policy rule ${deny.rule} refused the edge (${deny.cause}): ${deny.reason}`;
  const extensions = { rule: deny.rule, cause: deny.cause };
  if (deny.cause === 'scope') return new InvalidScopeError(detail, { extensions });
  return new PolicyDeniedError(detail, { reason: deny.cause, extensions });
}
