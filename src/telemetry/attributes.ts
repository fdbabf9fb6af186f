/**
 * baton's own span attribute names, under `baton.`; they never hold a token,
 * a context handle or an Authorization value (docs/observability.md). HTTP
 * attributes are the stable semantic conventions, imported where they are
 * set straight from @opentelemetry/semantic-conventions, so a rename
 * upstream is a compile error, not a silent drift.
 */
export const BatonAttribute = {
  /** inbound | outbound */
  direction: 'baton.direction',
  /** The user (keyed hash unless telemetry.subjectInClear), or the service for service-identity calls. */
  subject: 'baton.subject',
  /** The issuer that authenticated the subject (RFC 9493 iss_sub); not personal data, so always in clear. */
  subjectIssuer: 'baton.subject.issuer',
  /** The immediate caller: the last service in the chain. */
  caller: 'baton.caller',
  /** The services the call has come through, origin first, comma-separated. */
  chain: 'baton.chain',
  target: 'baton.target',
  /** One id for the whole chain, minted at the entry hop; joins spans to audit log lines. */
  txn: 'baton.txn',
  policyVersion: 'baton.policy.version',
  rule: 'baton.rule',
  /** allow | deny | would_deny */
  decision: 'baton.decision',
  cause: 'baton.decision.cause',
  /** issued | cached | refused:<oauth error> | unavailable */
  exchangeOutcome: 'baton.exchange.outcome',
  /** hit | miss | stale-refresh */
  exchangeCache: 'baton.exchange.cache',
  /** The authenticated OAuth client at the STS (the actor added to act). */
  client: 'baton.client',
  grant: 'baton.grant',
} as const;
