/**
 * The call-graph policy check before minting. The STS asks about the edge
 * only (no method or path: the callee's sidecar checks routes). A denial in
 * `shadow` mode is logged as `would_deny` and the token is minted anyway;
 * in `enforce` mode it is refused with the OAuth error its cause maps to.
 */
import type { CompiledPolicy, Decision, DecisionInput, Deny } from '../../policy/language/decision.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { recordIssuanceOutcome } from '../../telemetry/sts-span.ts';
import { InvalidScopeError, NotEntrypointError, StsNotReadyError, StsPolicyDeniedError } from '../errors.ts';

export function currentPolicy(policy: () => CompiledPolicy | undefined): CompiledPolicy {
  const current = policy();
  if (current === undefined) throw new StsNotReadyError('expected a call-graph policy, have none yet');
  return current;
}

/** Effective depth cap: the policy's, lowered by the operator's `maxChainDepth`. */
export function depthCap(policy: CompiledPolicy, maxChainDepth: number | undefined): number {
  return maxChainDepth === undefined ? policy.maxDepth : Math.min(policy.maxDepth, maxChainDepth);
}

export function checkEdge(policy: CompiledPolicy, input: DecisionInput, maxChainDepth: number | undefined, logger: Logger, audit: Readonly<Record<string, unknown>>): Decision {
  const cap = depthCap(policy, maxChainDepth);
  if (input.chain.length > cap) {
    const deny: Deny = { allowed: false, rule: 'spec.maxDepth' as Deny['rule'], cause: 'depth_exceeded', mode: 'enforce', reason: `expected at most ${cap} services in the chain, got ${input.chain.length}` };
    logger.info({ ...audit, event: 'deny', rule: deny.rule, cause: deny.cause, reason: deny.reason, policy: policy.digest }, 'token refused by policy');
    recordIssuanceOutcome({ rule: deny.rule, decision: 'deny' });
    throw refusal(deny);
  }
  const decision = policy.decide(input);
  recordIssuanceOutcome({ rule: decision.rule, decision: decision.allowed ? 'allow' : decision.mode === 'shadow' ? 'would_deny' : 'deny' });
  if (decision.allowed) return decision;
  if (decision.mode === 'shadow') {
    logger.warn({ ...audit, event: 'would_deny', rule: decision.rule, cause: decision.cause, reason: decision.reason, policy: policy.digest }, 'policy would deny; shadow mode lets the token be minted');
    return decision;
  }
  logger.info({ ...audit, event: 'deny', rule: decision.rule, cause: decision.cause, reason: decision.reason, policy: policy.digest }, 'token refused by policy');
  throw refusal(decision);
}

function refusal(deny: Deny): Error {
  const detail = `policy rule ${deny.rule} refused the edge (${deny.cause}): ${deny.reason}`;
  const extensions = { rule: deny.rule, cause: deny.cause };
  switch (deny.cause) {
    case 'not_entrypoint':
      return new NotEntrypointError(detail, { extensions });
    case 'scope':
      return new InvalidScopeError(detail, { extensions });
    default:
      return new StsPolicyDeniedError(detail, { extensions });
  }
}
