/** The policy tooling's errors: what `baton policy graph` and `baton policy observed` refuse. */
import { defineError } from '../../core/errors.ts';

export const AuditLogUnreadableError = defineError({ code: 'BATON_AUDIT_LOG_UNREADABLE', status: 400, title: 'Audit log path cannot be read' });
export const BadSinceError = defineError({ code: 'BATON_AUDIT_BAD_SINCE', status: 400, title: 'Unusable --since value' });
export const GraphvizUnavailableError = defineError({ code: 'BATON_GRAPHVIZ_UNAVAILABLE', status: 500, title: 'Graphviz (WASM) could not be loaded' });
