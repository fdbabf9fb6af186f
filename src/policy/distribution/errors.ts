/**
 * Policy distribution's errors: signing and verifying the policy document,
 * the policy server's answers, and the policy client that fetches it. A
 * sidecar or the STS meeting one of the client's errors keeps its last good
 * policy (DESIGN.md, "Failure behaviour") and logs the code. The server's
 * refusals are the shared ones (src/core/errors.ts): not ready (reason
 * `policy` or `identity`), overloaded (`long-polls`), a bad request (`wait`).
 */
import { defineError } from '../../core/errors.ts';

export const PolicySigningKeyError = defineError({ code: 'BATON_POLICY_SIGNING_KEY_INVALID', status: 500, title: 'Unusable policy signing key' });
export const PolicySignatureError = defineError({ code: 'BATON_POLICY_SIGNATURE_INVALID', status: 502, title: 'Policy signature not valid' });
export const PolicyDocumentMalformedError = defineError({ code: 'BATON_POLICY_DOCUMENT_MALFORMED', status: 502, title: 'Malformed signed policy document' });

export const PolicyServerUnavailableError = defineError({ code: 'BATON_POLICY_SERVER_UNAVAILABLE', status: 503, title: 'Policy server unavailable' });
export const PolicyVersionStaleError = defineError({ code: 'BATON_POLICY_VERSION_STALE', status: 502, title: 'Policy version not newer than the one held' });
export const PolicyDigestMismatchError = defineError({ code: 'BATON_POLICY_DIGEST_MISMATCH', status: 502, title: 'Policy digest does not match its content' });
export const PolicyTooOldError = defineError({ code: 'BATON_POLICY_TOO_OLD', status: 502, title: 'Policy document issued too long ago' });
