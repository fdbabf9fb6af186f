/** Telemetry's errors: what `baton audit` refuses to read. */
import { defineError } from '../core/errors.ts';

export const AuditInputUnreadableError = defineError({ code: 'BATON_AUDIT_INPUT_UNREADABLE', status: 400, title: 'Audit log input cannot be read' });
