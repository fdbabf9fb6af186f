/**
 * What the STS adds to its token endpoint span: who asked (the
 * authenticated client, the actor it becomes), for whom (the subject's
 * pseudonym), along which chain, to which target, and which rule let it or
 * refused it. Never a token: only claims already checked.
 */
import { type Attributes, trace } from '@opentelemetry/api';
import { BatonAttribute } from './attributes.ts';
import type { SubjectPseudonym } from './subject-pseudonym.ts';

export interface IssuanceRecord {
  readonly grant: string;
  readonly client: string;
  readonly chain: readonly string[];
  readonly target: string;
  readonly txn: string | undefined;
  readonly subject: string | undefined;
  readonly subjectIssuer?: string | undefined;
}

export function recordIssuanceRequest(record: IssuanceRecord, pseudonym: SubjectPseudonym | undefined): void {
  const span = trace.getActiveSpan();
  if (span === undefined || !span.isRecording()) return;
  const attributes: Attributes = {
    [BatonAttribute.grant]: record.grant,
    [BatonAttribute.client]: record.client,
    [BatonAttribute.caller]: record.client,
    [BatonAttribute.chain]: record.chain.join(','),
    [BatonAttribute.target]: record.target,
  };
  if (record.txn !== undefined) attributes[BatonAttribute.txn] = record.txn;
  if (record.subject !== undefined && pseudonym !== undefined)
    attributes[BatonAttribute.subject] = pseudonym(record.subject, record.subjectIssuer);
  if (record.subjectIssuer !== undefined) attributes[BatonAttribute.subjectIssuer] = record.subjectIssuer;
  span.setAttributes(attributes);
}

/** The policy's answer at the STS, and what came of the request (`issued`, or `refused:<oauth error>`). */
export function recordIssuanceOutcome(outcome: { rule?: string; decision?: string; exchangeOutcome?: string }): void {
  const span = trace.getActiveSpan();
  if (span === undefined || !span.isRecording()) return;
  if (outcome.rule !== undefined) span.setAttribute(BatonAttribute.rule, outcome.rule);
  if (outcome.decision !== undefined) span.setAttribute(BatonAttribute.decision, outcome.decision);
  if (outcome.exchangeOutcome !== undefined) span.setAttribute(BatonAttribute.exchangeOutcome, outcome.exchangeOutcome);
}
