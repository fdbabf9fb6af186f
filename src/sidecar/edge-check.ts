/**
 * One call-graph decision, its audit line and its metric, and what the
 * request does about it: go on (allow, or a shadow-mode deny recorded as
 * `would_deny`), or stop with 403 naming the rule — 401 with an RFC 9470
 * step-up challenge when only the `acr` was short.
 */
import type { CompiledPolicy, Decision, DecisionInput, Deny } from '../policy/language/decision.ts';
import type { HttpError } from '../core/errors.ts';
import { writeAuditEvent } from '../telemetry/audit-event.ts';
import { recordDecisionSpan } from '../telemetry/decision-span.ts';
import type { Logger } from 'pino';
import type { SubjectPseudonym } from '../telemetry/subject-pseudonym.ts';
import type { Direction, SidecarMetrics } from './metrics.ts';
import { PolicyDeniedError } from '../policy/language/errors.ts';
import { StepUpRequiredError } from './errors.ts';

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
  /** Tracing on: the decision is also a span event (off, nothing is built for it). */
  readonly traced?: boolean;
  /** `baton.subject` in spans; without it spans carry no subject. */
  readonly pseudonym?: SubjectPseudonym;
  /** Inbound over mTLS: the SPIFFE ID of the connected peer. */
  readonly peer?: string;
  /** Inbound: whether the token was certificate-bound (RFC 8705 §3). */
  readonly bound?: boolean;
}

/**
 * The sidecar's check of one call against the call graph: decides, audits, and throws when the call must stop.
 * `known` is a decision this policy already made for this same input (`baton authz`'s decision cache,
 * src/authz/decision-cache.ts): the call is audited, counted and answered exactly as if decided now.
 */
export function checkSidecarEdge(
  policy: CompiledPolicy,
  input: DecisionInput,
  context: EdgeContext,
  known?: Decision,
): Decision {
  const decision = known ?? policy.decide(input);
  const outcome = decision.allowed ? 'allow' : decision.mode === 'shadow' ? 'would_deny' : 'deny';
  context.metrics.decision(decision.rule, outcome);
  // What enforcing would break, by target and rule (docs/rollout.md).
  if (outcome === 'would_deny') context.metrics.shadowDenial(input.target, decision.rule);
  if (context.traced !== false) {
    recordDecisionSpan(
      {
        direction: context.direction,
        subject: context.subject,
        subjectIssuer: context.subjectIssuer,
        chain: input.chain,
        target: input.target,
        txn: context.txn,
        policyVersion: context.policyVersion,
        rule: decision.rule,
        decision: outcome,
        cause: decision.allowed ? undefined : decision.cause,
      },
      context.pseudonym,
    );
  }
  const refusal = decision.allowed || decision.mode === 'shadow' ? undefined : refusalOf(decision);
  // The audit line: who, through whom, to what, which rule, what answer, and the status the caller got.
  // Never a token or a handle. `service`, trace_id and span_id come from the logger (src/telemetry/logger.ts).
  writeAuditEvent(context.logger, {
    event: 'decision',
    component: 'sidecar',
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
    status: refusal?.status,
    txn: context.txn,
    request: context.request,
    policyVersion: context.policyVersion,
    peer: context.peer,
    bound: context.bound,
  });
  if (refusal !== undefined) throw refusal;
  return decision;
}

function refusalOf(decision: Deny): HttpError {
  if (decision.cause === 'acr' && decision.acrValues !== undefined && decision.acrValues.length > 0) {
    return new StepUpRequiredError(decision.reason, {
      extensions: { rule: decision.rule, cause: decision.cause, acr_values: decision.acrValues.join(' ') },
    });
  }
  return new PolicyDeniedError(decision.reason, {
    reason: decision.cause,
    extensions: { rule: decision.rule, cause: decision.cause },
  });
}
