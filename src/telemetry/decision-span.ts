/**
 * The policy decision in the trace: the identity attributes on the
 * request's span, so a trace search for `baton.rule` or
 * `baton.decision=deny` finds the hop itself, and a `baton.policy.decision`
 * event marking when it was taken. An event, not an INTERNAL span: the
 * decision takes microseconds, and a span per decision was a third of the
 * spans (and of the tracing cost) of a hop (bench/tracing.bench.ts).
 * A deny is found by `baton.decision=deny` and by `error.type`
 * (`BATON_POLICY_DENIED`, set when the span ends): the span's status
 * follows the HTTP conventions, an error on the CLIENT span (4xx) and
 * unset on the SERVER span, which the conventions require for a 4xx.
 */
import { type Attributes, trace } from '@opentelemetry/api';
import { BatonAttribute } from './attributes.ts';
import type { SubjectPseudonym } from './subject-pseudonym.ts';

export interface DecisionRecord {
  readonly direction: 'inbound' | 'outbound';
  readonly subject: string | undefined;
  readonly subjectIssuer?: string | undefined;
  readonly chain: readonly string[];
  readonly target: string;
  readonly txn: string | undefined;
  readonly policyVersion: number | undefined;
  readonly rule: string;
  readonly decision: 'allow' | 'deny' | 'would_deny';
  readonly cause: string | undefined;
}

export function recordDecisionSpan(record: DecisionRecord, pseudonym: SubjectPseudonym | undefined): void {
  const requestSpan = trace.getActiveSpan();
  // Off, or not sampled: nothing to build.
  if (requestSpan === undefined || !requestSpan.isRecording()) return;
  const attributes: Attributes = {
    [BatonAttribute.direction]: record.direction,
    [BatonAttribute.chain]: record.chain.join(','),
    [BatonAttribute.target]: record.target,
    [BatonAttribute.rule]: record.rule,
    [BatonAttribute.decision]: record.decision,
  };
  const caller = record.chain[record.chain.length - 1];
  if (caller !== undefined) attributes[BatonAttribute.caller] = caller;
  if (record.subject !== undefined && pseudonym !== undefined)
    attributes[BatonAttribute.subject] = pseudonym(record.subject, record.subjectIssuer);
  if (record.subjectIssuer !== undefined) attributes[BatonAttribute.subjectIssuer] = record.subjectIssuer;
  if (record.txn !== undefined) attributes[BatonAttribute.txn] = record.txn;
  if (record.policyVersion !== undefined) attributes[BatonAttribute.policyVersion] = record.policyVersion;
  if (record.cause !== undefined) attributes[BatonAttribute.cause] = record.cause;
  requestSpan.setAttributes(attributes);
  requestSpan.addEvent('baton.policy.decision', {
    [BatonAttribute.rule]: record.rule,
    [BatonAttribute.decision]: record.decision,
  });
}
