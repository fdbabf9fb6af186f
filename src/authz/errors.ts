/**
 * `baton authz`'s own error cause. Everything else it refuses with is the
 * sidecar's cause for the same thing (a bad token, a policy denial, a
 * refused binding: src/sidecar/errors.ts, src/token/errors.ts), so one code
 * means one thing whichever way baton runs. The one cause only an
 * authorizer meets is a question its proxy asked badly.
 */
import { defineError } from '../core/errors.ts';

/**
 * The proxy's question lacks what baton needs or contradicts itself: no
 * method or path, an unknown `direction`, a peer certificate naming another
 * SPIFFE ID than the principal. `reason` names which. A proxy
 * misconfiguration, never the caller's fault: over gRPC the answer's status
 * is INVALID_ARGUMENT, and the request is denied.
 */
export const MalformedCheckError = defineError({
  code: 'BATON_AUTHZ_MALFORMED_CHECK',
  status: 400,
  title: 'Malformed authorization check',
});
