/**
 * One call-graph decision, its audit line and its metric, and what the
 * request does about it: go on (allow, or a shadow-mode deny recorded as
 * `would_deny`), or stop with 403 naming the rule — 401 with an RFC 9470
 * step-up challenge when only the `acr` was short.
 */
import type { CompiledPolicy, Decision, DecisionInput } from '../policy/language/decision.ts';
import { recordDecisionSpan } from '../telemetry/decision-span.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { SubjectPseudonym } from '../telemetry/subject-pseudonym.ts';
import type { Direction, SidecarMetrics } from './metrics.ts';
import { PolicyDeniedError, StepUpRequiredError } from './errors.ts';

export interface EdgeContext {
  readonly direction: Direction;
  readonly service: string;
  readonly subject: string | undefined;
  /** The issuer that authenticated the subject: with `subject`, the user's identity. */
  readonly subjectIssuer?: string | undefined;
  readonly txn: string | undefined;
  /** The request this call belongs to (./request-id.ts): one id per request, where txn is one per user token. */
  readonly request: string | undefined;
  readonly policyVersion: number | undefined;
  readonly logger: Logger;
  readonly metrics: SidecarMetrics;
  /** `baton.subject` in spans; without it spans carry no subject. */
  readonly pseudonym?: SubjectPseudonym;
  /** Inbound over mTLS: the SPIFFE ID of the connected peer. */
  readonly peer?: string;
  /** Inbound: whether the token was certificate-bound (RFC 8705 §3). */
  readonly bound?: boolean;
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
  // `service` comes from the logger's base binding and trace_id/span_id from its mixin
  // (src/telemetry/logger.ts): written here too, the key would appear twice in the line.
  context.logger.info(
    {
      event: 'decision',
      direction: context.direction,
      subject: context.subject,
      subjectIssuer: context.subjectIssuer,
      chain: input.chain,
      target: input.target,
      method: input.method,
      path: input.path,
      // user, scopes and acr let `baton policy observed` re-decide this call and `suggest` write its rule.
      // acr is null when the token had none, so a reader can tell that from a line written before acr was logged.
      user: input.user,
      scopes: [...input.scopes],
      acr: input.acr ?? null,
      rule: decision.rule,
      decision: outcome,
      cause: decision.allowed ? undefined : decision.cause,
      txn: context.txn,
      request: context.request,
      policyVersion: context.policyVersion,
      peer: context.peer,
      bound: context.bound,
    },
    'decision',
  );
  if (decision.allowed || decision.mode === 'shadow') return decision;
  if (decision.cause === 'acr' && decision.acrValues !== undefined && decision.acrValues.length > 0) {
    throw new StepUpRequiredError(decision.reason, { extensions: { rule: decision.rule, cause: decision.cause, acr_values: decision.acrValues.join(' ') } });
  }
  throw new PolicyDeniedError(decision.reason, { extensions: { rule: decision.rule, cause: decision.cause } });
}
