/**
 * Checks log output against the one audit schema (src/telemetry/audit-event.ts):
 * every line that names an audit event must parse, and must carry no key the
 * schema does not know — so a writer that adds a field without the parser
 * fails here instead of silently dropping the field from `baton audit`.
 */
import assert from 'node:assert/strict';
import { AUDIT_SCHEMA, type AuditLine, ENVELOPE_KEYS, parseAuditLine } from '../../src/telemetry/audit-event.ts';

/** The keys a line of this event may carry: the envelope pino writes, the tag, and the variant's fields. */
export function knownKeys(event: keyof typeof AUDIT_SCHEMA): ReadonlySet<string> {
  return new Set([...ENVELOPE_KEYS, 'event', 'component', ...Object.keys(AUDIT_SCHEMA[event].fields)]);
}

/** Parses every audit line in `text` (one JSON object per line), failing on any the schema does not fully know. */
export function auditLinesOf(text: string): AuditLine[] {
  const parsed: AuditLine[] = [];
  for (const raw of text.split('\n')) {
    if (!raw.startsWith('{')) continue;
    const record = JSON.parse(raw) as Record<string, unknown>;
    if (typeof record.event !== 'string' || !Object.hasOwn(AUDIT_SCHEMA, record.event)) continue;
    const event = record.event as keyof typeof AUDIT_SCHEMA;
    const unknown = Object.keys(record).filter((key) => !knownKeys(event).has(key));
    assert.deepEqual(unknown, [], `${event} line carries keys the audit schema does not know`);
    const line = parseAuditLine(raw);
    assert.ok(line !== undefined, `${event} line the audit parser cannot read: ${raw.slice(0, 300)}`);
    parsed.push(line);
  }
  return parsed;
}
