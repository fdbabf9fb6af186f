/**
 * Policy distribution's errors: signing and verifying the policy document,
 * the policy server's answers, and the policy client that fetches it. A
 * sidecar or the STS meeting one of the client's errors keeps its last good
 * policy (DESIGN.md, "Failure behaviour") and logs the code. The server's
 * refusals are the shared ones (src/core/errors.ts): not ready (reason
 * `policy` or `identity`), overloaded (`long-polls`), a bad request (`wait`).
 */
import { defineError } from '../../core/errors.ts';

export const PolicySigningKeyError = defineError({
  code: 'BATON_POLICY_SIGNING_KEY_INVALID',
  status: 500,
  title: 'Unusable policy signing key',
});
export const PolicySignatureError = defineError({
  code: 'BATON_POLICY_SIGNATURE_INVALID',
  status: 502,
  title: 'Policy signature not valid',
});
/** Not a signed policy document of the expected shape, or (reason `digest`) one whose digest does not match its content. */
export const PolicyDocumentMalformedError = defineError({
  code: 'BATON_POLICY_DOCUMENT_MALFORMED',
  status: 502,
  title: 'Malformed signed policy document',
});

/** No answer, or one that broke off (reason: node's or undici's code, e.g. `ECONNREFUSED`, `UND_ERR_SOCKET`), or not a 200 or 304. */
export const PolicyServerUnavailableError = defineError({
  code: 'BATON_POLICY_SERVER_UNAVAILABLE',
  status: 503,
  title: 'Policy server unavailable',
});
/**
 * A policy older than the client accepts: a version not newer than the one it
 * holds (reason `version`: a rollback, or a server restarted without its state
 * file), or one signed longer ago than `maxAgeSeconds` (`age`: the server
 * stopped re-signing, or a replay).
 */
export const PolicyStaleError = defineError({
  code: 'BATON_POLICY_STALE',
  status: 502,
  title: 'Policy older than the one held or than allowed',
});
