/** Telemetry's errors: what `baton audit` and `baton policy observed` refuse to read. */
import { defineError } from '../core/errors.ts';

/** An audit log file or directory that cannot be read (reason `unreadable`, node's code in the message), or a `--since` that is no time (`since`). */
export const AuditInputInvalidError = defineError({
  code: 'BATON_AUDIT_INPUT_INVALID',
  status: 400,
  title: 'Audit log input cannot be used',
});
