/**
 * One call-graph decision, its audit line and its metric, and what the
 * request does about it: go on (allow, or a shadow-mode deny recorded as
 * `would_deny`), or stop with 403 naming the rule — 401 with an RFC 9470
 * step-up challenge when only the `acr` was short.
 */
import type { CompiledPolicy, Decision, DecisionInput } from '../policy/decision.ts';
import { recordDecisionSpan } from '../telemetry/decision-span.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { SubjectPseudonym } from '../telemetry/subject-pseudonym.ts';
import type { Direction, SidecarMetrics } from './metrics.ts';
import { PolicyDeniedError, StepUpRequiredError } from './problems.ts';

export interface EdgeContext {
  readonly direction: Direction;
  readonly service: string;
  readonly subject: string | undefined;
  /** The issuer that authenticated the subject: with `subject`, the user's identity. */
  readonly subjectIssuer?: string | undefined;
  readonly txn: string | undefined;
  readonly policyVersion: number | undefined;
  readonly logger: Logger;
  readonly metrics: SidecarMetrics;
  /** `baton.subject` in spans; without it spans carry no subject. */
  readonly pseudonym?: SubjectPseudonym;
}

/** Decides, audits, and throws when the call must stop. */
export function checkEdge(policy: CompiledPolicy, input: DecisionInput, context: EdgeContext): Decision {
  const decision = policy.decide(input);
  const outcome = decision.allowed ? 'allow' : decision.mode === 'shadow' ? 'would_deny' : 'deny';
  context.metrics.decision(decision.rule, outcome);
  // What enforcing would break, by target and rule (docs/rollout.md).
  if (outcome === 'would_deny') context.metrics.shadowDenial(input.target, decision.rule);
  recordDecisionSpan(
    { direction: context.direction, subject: context.subject, subjectIssuer: context.subjectIssuer, chain: input.chain, target: input.target, txn: context.txn, policyVersion: context.policyVersion, rule: decision.rule, decision: outcome, cause: decision.allowed ? undefined : decision.cause },
    context.pseudonym,
  );
  // The audit line: who, through whom, to what, which rule, what answer. Never a token or a handle.
  // trace_id and span_id are added by the logger (src/telemetry/logger.ts) when a span is active.
  context.logger.info(
    {
      event: 'decision',
      direction: context.direction,
      service: context.service,
      subject: context.subject,
      subjectIssuer: context.subjectIssuer,
      chain: input.chain,
      target: input.target,
      method: input.method,
      path: input.path,
      // user and scopes let `baton policy observed` re-decide this call and `suggest` write its rule.
      user: input.user,
      scopes: [...input.scopes],
      rule: decision.rule,
      decision: outcome,
      cause: decision.allowed ? undefined : decision.cause,
      txn: context.txn,
      policyVersion: context.policyVersion,
    },
    'decision',
  );
  if (decision.allowed || decision.mode === 'shadow') return decision;
  if (decision.cause === 'acr' && decision.acrValues !== undefined && decision.acrValues.length > 0) {
    throw new StepUpRequiredError(decision.reason, { extensions: { rule: decision.rule, cause: decision.cause, acr_values: decision.acrValues.join(' ') } });
  }
  throw new PolicyDeniedError(decision.reason, { extensions: { rule: decision.rule, cause: decision.cause } });
}
