/**
 * The audit trail's one schema: every audit line baton writes, as a tagged
 * union on `event`, with the one writer every component calls and the one
 * parser `baton audit` and `baton policy observed` read with.
 *
 * Each line says who wrote it (`component`, and `direction` for a
 * sidecar) and, where the writer knows one, the real HTTP `status` and
 * OAuth `error` the caller got: a reader never guesses either. The policy
 * that decided is `policyVersion` everywhere (docs/observability.md).
 *
 * `FIELDS` lists every field of every variant and how to read it; its type
 * fails to compile when a variant gains a field the table lacks, and the
 * round-trip test (test/telemetry/audit-event.test.ts) fails when a writer
 * writes a key the table does not know.
 */
import pino, { type Logger } from 'pino';

export type AuditOutcome = 'allow' | 'deny' | 'would_deny';
export type AuditDirection = 'inbound' | 'outbound';
export type AuditComponent = 'sidecar' | 'sts';

/** A sidecar's call-graph decision (src/sidecar/edge-check.ts). */
export interface SidecarDecisionEvent {
  readonly event: 'decision';
  readonly component: 'sidecar';
  readonly direction: AuditDirection;
  readonly subject?: string | undefined;
  /** The issuer that authenticated the subject: `subject` is unique only together with it. */
  readonly subjectIssuer?: string | undefined;
  /** Callers, origin first, immediate caller last; empty for a token straight from an external IdP. */
  readonly chain: readonly string[];
  readonly target: string;
  readonly method?: string | undefined;
  readonly path?: string | undefined;
  // user, scopes and acr let `baton policy observed` re-decide the call; undefined in lines written before they were logged.
  readonly user?: boolean | undefined;
  readonly scopes?: readonly string[] | undefined;
  /** null when the token had none, undefined in a line written before acr was logged. */
  readonly acr?: string | null | undefined;
  readonly rule: string;
  readonly decision: AuditOutcome;
  readonly cause?: string | undefined;
  /** The status the sidecar answered when it stopped the call (403, or 401 for step-up); absent when the call went on. */
  readonly status?: number | undefined;
  readonly txn?: string | undefined;
  readonly request?: string | undefined;
  readonly policyVersion?: number | undefined;
  /** Inbound over mTLS: the caller's SPIFFE ID. */
  readonly peer?: string | undefined;
  /** Inbound: the token was certificate-bound (RFC 8705 §3). */
  readonly bound?: boolean | undefined;
}

/** A sidecar request that failed on baton's side (a 5xx problem), not by a decision. */
export interface SidecarRequestFailedEvent {
  readonly event: 'request_failed';
  readonly component: 'sidecar';
  readonly direction: AuditDirection;
  readonly code: string;
  /** The code's sub-cause, when it names one (docs/errors.md). */
  readonly reason?: string | undefined;
  readonly status: number;
  readonly method?: string | undefined;
}

/** What the STS knows about a token request once it has decided who asks for what (src/sts/grants/). */
export interface StsGrantAudit {
  readonly grant: 'token-exchange' | 'client_credentials';
  /** The authenticated client: the newest actor. */
  readonly client: string;
  readonly target: string;
  readonly chain: readonly string[];
  /** token-exchange: whether the subject token was the mesh's own or an external IdP's. */
  readonly subjectKind?: 'mesh' | 'external' | undefined;
  /** token-exchange: the subject token's issuer. */
  readonly issuer?: string | undefined;
  readonly subjectIssuer?: string | undefined;
  readonly txn: string;
  readonly policyVersion: number;
}

/** The STS's policy gate said no (`deny`, the token is refused) or would have (`would_deny`, shadow mode). */
export interface StsDecisionEvent extends StsGrantAudit {
  readonly event: 'token_decision';
  readonly component: 'sts';
  readonly rule: string;
  readonly decision: 'deny' | 'would_deny';
  readonly cause: string;
  readonly reason: string;
  /** deny: the status and RFC 6749 §5.2 error the client got. */
  readonly status?: number | undefined;
  readonly error?: string | undefined;
}

/** The STS minted a token. */
export interface StsIssuedEvent extends StsGrantAudit {
  readonly event: 'token_issued';
  readonly component: 'sts';
  readonly rule: string;
  readonly decision: 'allow' | 'would_deny';
  readonly cause?: string | undefined;
  /** Absent when no scope was granted (RFC 6749 §3.3 has no empty scope). */
  readonly scope?: string | undefined;
  readonly exp: number;
  readonly jti: string;
  readonly status: number;
}

/** The STS answered an error: every refusal, whatever its cause, with what the client got. */
export interface StsRefusedEvent {
  readonly event: 'token_refused';
  readonly component: 'sts';
  readonly code: string;
  /** The code's sub-cause, when it names one (docs/errors.md). */
  readonly reason?: string | undefined;
  readonly status: number;
  /** At the token endpoint: the RFC 6749 §5.2 error code. */
  readonly error?: string | undefined;
  readonly path: string;
}

export type AuditEvent =
  SidecarDecisionEvent | SidecarRequestFailedEvent | StsDecisionEvent | StsIssuedEvent | StsRefusedEvent;
export type AuditEventName = AuditEvent['event'];

/** How one field is read back; `optional` fields may be absent (or, for `acr`, null). */
type Field =
  | { readonly kind: 'text' | 'texts' | 'boolean' | 'integer'; readonly optional: boolean }
  | { readonly kind: 'oneOf'; readonly values: readonly string[]; readonly optional: boolean }
  | { readonly kind: 'textOrNull' };

type FieldTable<V> = { readonly [K in Exclude<keyof V, 'event' | 'component'>]-?: Field };
type Schema = {
  readonly [V in AuditEvent as V['event']]: { readonly component: V['component']; readonly fields: FieldTable<V> };
};

const text = { kind: 'text', optional: false } as const;
const optionalText = { kind: 'text', optional: true } as const;
const texts = { kind: 'texts', optional: false } as const;
const integer = { kind: 'integer', optional: false } as const;
const optionalInteger = { kind: 'integer', optional: true } as const;
const optionalBoolean = { kind: 'boolean', optional: true } as const;
const oneOf = (values: readonly string[], optional = false): Field => ({ kind: 'oneOf', values, optional });
const DIRECTIONS = ['inbound', 'outbound'] as const;

const GRANT_FIELDS: FieldTable<StsGrantAudit> = {
  grant: oneOf(['token-exchange', 'client_credentials']),
  client: text,
  target: text,
  chain: texts,
  subjectKind: oneOf(['mesh', 'external'], true),
  issuer: optionalText,
  subjectIssuer: optionalText,
  txn: text,
  policyVersion: integer,
};

/** Every variant, every field: the one table the parser reads by and the tests check writers against. */
export const AUDIT_SCHEMA: Schema = {
  decision: {
    component: 'sidecar',
    fields: {
      direction: oneOf(DIRECTIONS),
      subject: optionalText,
      subjectIssuer: optionalText,
      chain: texts,
      target: text,
      method: optionalText,
      path: optionalText,
      user: optionalBoolean,
      scopes: { kind: 'texts', optional: true },
      acr: { kind: 'textOrNull' },
      rule: text,
      decision: oneOf(['allow', 'deny', 'would_deny']),
      cause: optionalText,
      status: optionalInteger,
      txn: optionalText,
      request: optionalText,
      policyVersion: optionalInteger,
      peer: optionalText,
      bound: optionalBoolean,
    },
  },
  request_failed: {
    component: 'sidecar',
    fields: { direction: oneOf(DIRECTIONS), code: text, reason: optionalText, status: integer, method: optionalText },
  },
  token_decision: {
    component: 'sts',
    fields: {
      ...GRANT_FIELDS,
      rule: text,
      decision: oneOf(['deny', 'would_deny']),
      cause: text,
      reason: text,
      status: optionalInteger,
      error: optionalText,
    },
  },
  token_issued: {
    component: 'sts',
    fields: {
      ...GRANT_FIELDS,
      rule: text,
      decision: oneOf(['allow', 'would_deny']),
      cause: optionalText,
      scope: optionalText,
      exp: integer,
      jti: text,
      status: integer,
    },
  },
  token_refused: {
    component: 'sts',
    fields: { code: text, reason: optionalText, status: integer, error: optionalText, path: text },
  },
};

/** The keys pino writes around every line (src/telemetry/logger.ts): not part of any event. */
export const ENVELOPE_KEYS: ReadonlySet<string> = new Set([
  'level',
  'time',
  'pid',
  'hostname',
  'name',
  'service',
  'msg',
  'trace_id',
  'span_id',
]);

const MESSAGES: { readonly [N in AuditEventName]: string } = {
  decision: 'decision',
  request_failed: 'request failed',
  token_decision: 'token refused by policy',
  token_issued: 'token issued',
  token_refused: 'token refused',
};

function messageOf(event: AuditEvent): string {
  return event.event === 'token_decision' && event.decision === 'would_deny'
    ? 'policy would deny; shadow mode lets the token be minted'
    : MESSAGES[event.event];
}

/**
 * Writes one audit line through the component's pino logger, which adds
 * `time`, `service` and, inside a span, `trace_id`/`span_id`. Never pass a
 * token or a `baton-context` handle: no variant has a field for one.
 */
export function writeAuditEvent(logger: Logger, event: AuditEvent, msg: string = messageOf(event)): void {
  // Built in one pass, without a redaction pass: see writeEventLine below for why, and what guards the fields instead.
  writeEventLine(
    logger,
    event.event === 'request_failed' || (event.event === 'token_decision' && event.decision === 'would_deny')
      ? 'warn'
      : 'info',
    event,
    msg,
  );
}

/**
 * One event as one line, built in one pass: the same line pino would write
 * for `logger[level](fields, msg)` (level label, ISO time, the logger's
 * bindings, the mixin's trace ids, the fields, `msg`), serialised by V8's
 * JSON.stringify in one call instead of pino's per-key walk and redaction,
 * and handed to the logger's own stream, so order and buffering are the
 * logger's. For the audit event only: 15–20 µs a line through pino,
 * measured on this machine, on every request. V8's
 * JSON.stringify is kept for the fields: a serializer generated from the
 * audit schema by fast-json-stringify measured no faster on Node.js 24
 * (0.72–0.87 µs against 0.77–1.33 µs for a decision event, #28).
 *
 * No redaction pass either. Redaction with the wildcard paths of ./logger.ts
 * re-walks every object logged; the audit event needs no second line of
 * defence by key name: its fields are a closed, typed set, none of them a
 * credential, and test/telemetry/audit-event.test.ts checks that no field
 * is one the redaction would censor.
 */
function writeEventLine(logger: Logger, level: 'info' | 'warn', fields: object, msg: string): void {
  if (!logger.isLevelEnabled(level)) return;
  const internals = logger as unknown as Record<symbol, unknown>;
  const mixin = internals[pino.symbols.mixinSym] as ((merge: object, level: number) => object) | undefined;
  const ids = mixin === undefined ? '' : members(JSON.stringify(mixin({}, logger.levels.values[level] as number)));
  const own = members(JSON.stringify(fields));
  const line = `{"level":"${level}","time":"${new Date().toISOString()}"${internals[pino.symbols.chindingsSym] as string}${ids}${own},"msg":${JSON.stringify(msg)}}\n`;
  (internals[pino.symbols.streamSym] as { write(line: string): unknown }).write(line);
}

/** `{"a":1,"b":2}` → `,"a":1,"b":2`; `{}` → nothing. */
function members(json: string): string {
  return json.length <= 2 ? '' : `,${json.slice(1, -1)}`;
}

/** One audit line read back: the event, and what the logger wrote around it. */
export interface AuditLine {
  /** Epoch milliseconds, from pino's `time` (ISO string or epoch number); undefined when absent. */
  readonly time: number | undefined;
  /** The process that wrote the line (the logger's `service` binding). */
  readonly service: string;
  readonly traceId: string | undefined;
  readonly spanId: string | undefined;
  readonly audit: AuditEvent;
}

// Bounds for text that came from request-controlled fields: a hostile path must not blow up a report.
const MAX_FIELD = 2048;
const MAX_LIST = 64;
const TRACE_ID = /^[0-9a-f]{32}$/;
const SPAN_ID = /^[0-9a-f]{16}$/;

/**
 * Parses one log line (after an optional container-runtime or `docker
 * compose logs` prefix); undefined for anything that is not a well-formed
 * audit line. Lines written before `component` or `status` existed are read,
 * with what they lack left undefined; nothing is filled in by guessing.
 */
export function parseAuditLine(line: string): AuditLine | undefined {
  const start = line.indexOf('{');
  // Cheap pre-filter: most lines of a busy log are not audit lines.
  if (start === -1 || !line.includes('"event"')) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(start === 0 ? line : line.slice(start));
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  return parseAuditRecord(value as Record<string, unknown>);
}

/** The same, for a line already parsed as JSON. */
export function parseAuditRecord(record: Readonly<Record<string, unknown>>): AuditLine | undefined {
  const name = record.event;
  if (typeof name !== 'string' || !Object.hasOwn(AUDIT_SCHEMA, name)) return undefined;
  const variant = AUDIT_SCHEMA[name as AuditEventName];
  // A line from before `component` was written is still its variant's; one naming another component is not.
  if (record.component !== undefined && record.component !== variant.component) return undefined;
  if (!isText(record.service)) return undefined;
  const event: Record<string, unknown> = { event: name, component: variant.component };
  for (const [key, field] of Object.entries(variant.fields) as [string, Field][]) {
    const read = readField(record[key], field);
    if (read === INVALID) return undefined;
    if (read !== undefined) event[key] = read;
  }
  const traceId = record.trace_id;
  const spanId = record.span_id;
  return {
    time: timeOf(record.time),
    service: record.service,
    traceId: typeof traceId === 'string' && TRACE_ID.test(traceId) ? traceId : undefined,
    spanId: typeof spanId === 'string' && SPAN_ID.test(spanId) ? spanId : undefined,
    audit: event as unknown as AuditEvent,
  };
}

const INVALID = Symbol('invalid');

function readField(value: unknown, field: Field): unknown {
  if (field.kind === 'textOrNull') return value === null || value === undefined || isText(value) ? value : INVALID;
  if (value === undefined) return field.optional ? undefined : INVALID;
  switch (field.kind) {
    case 'text':
      return isText(value) ? value : INVALID;
    case 'texts':
      return Array.isArray(value) && value.length <= MAX_LIST && value.every(isText) ? value : INVALID;
    case 'boolean':
      return typeof value === 'boolean' ? value : INVALID;
    case 'integer':
      return Number.isSafeInteger(value) ? value : INVALID;
    case 'oneOf':
      return typeof value === 'string' && field.values.includes(value) ? value : INVALID;
  }
}

function timeOf(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value !== 'string') return undefined;
  const time = Date.parse(value);
  return Number.isNaN(time) ? undefined : time;
}

function isText(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_FIELD;
}
