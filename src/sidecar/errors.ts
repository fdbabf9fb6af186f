/**
 * The sidecar's own error causes (DESIGN.md, "Sidecar": errors), one class
 * per cause. Token verification causes live in src/token/errors.ts, the
 * exchange causes in src/sidecar/exchange/errors.ts, a policy refusal in
 * src/policy/language/errors.ts, and the causes every part shares
 * (BATON_NOT_READY, BATON_BAD_REQUEST, BATON_METHOD_NOT_ALLOWED,
 * BATON_OVERLOADED, BATON_INTERNAL) in src/core/errors.ts.
 * src/sidecar/pipeline.ts writes any of them to the wire.
 */
import { type HttpErrorClass, defineError } from '../core/errors.ts';

export const UnauthenticatedError = defineError({
  code: 'BATON_UNAUTHENTICATED',
  status: 401,
  title: 'Authentication required',
  oauthError: 'invalid_token',
});
export const StepUpRequiredError = defineError({
  code: 'BATON_STEP_UP_REQUIRED',
  status: 401,
  title: 'Stronger user authentication required',
  oauthError: 'insufficient_user_authentication',
});
export const UnknownServiceError = defineError({
  code: 'BATON_UNKNOWN_SERVICE',
  status: 403,
  title: 'Unknown target service',
});
/** The request's bytes do not frame as one unambiguous HTTP/1.1 message (src/dataplane/http1-parser.ts); `reason` names the class. */
export const RequestFramingError = defineError({
  code: 'BATON_REQUEST_FRAMING',
  status: 400,
  title: 'Ambiguous or malformed HTTP/1.1 framing',
});
export const RequestHeadTooLargeError = defineError({
  code: 'BATON_REQUEST_HEAD_TOO_LARGE',
  status: 431,
  title: 'Request header section too large',
});
/** The request head (reason `head`) or body (`body`) did not arrive in time; the connection is closed. */
export const RequestTimeoutError = defineError({
  code: 'BATON_REQUEST_TIMEOUT',
  status: 408,
  title: 'Request not received in time',
});
/** A protocol upgrade (WebSocket, h2c): after a 101 the bytes are no longer HTTP the sidecar can check, so none is forwarded. */
export const UpgradeRefusedError = defineError({
  code: 'BATON_UPGRADE_REFUSED',
  status: 501,
  title: 'Protocol upgrades are not forwarded',
});
export const FairShareExceededError = defineError({
  code: 'BATON_FAIR_SHARE_EXCEEDED',
  status: 429,
  title: 'This caller holds its share of the requests in flight',
});
export const UpstreamTimeoutError = defineError({
  code: 'BATON_UPSTREAM_TIMEOUT',
  status: 504,
  title: 'Upstream did not answer in time',
});
export const UpstreamUnreachableError = defineError({
  code: 'BATON_UPSTREAM_UNREACHABLE',
  status: 502,
  title: 'Upstream unreachable',
});
/** The app's or upstream's answer did not frame as one unambiguous HTTP/1.1 response (src/dataplane/http1-parser.ts); `reason` names the class. */
export const UpstreamFramingError = defineError({
  code: 'BATON_UPSTREAM_FRAMING',
  status: 502,
  title: 'Ambiguous or malformed HTTP/1.1 answer from upstream',
});
/** mtls: the upstream's certificate names another SPIFFE ID than the target service's; nothing was sent. */
export const UpstreamIdentityMismatchError = defineError({
  code: 'BATON_UPSTREAM_IDENTITY_MISMATCH',
  status: 502,
  title: 'Upstream presented a certificate for another service',
});
/** mtls: the TLS handshake with the upstream failed (untrusted or expired certificate, or no TLS at all); nothing was sent. */
export const UpstreamTlsError = defineError({
  code: 'BATON_UPSTREAM_TLS_FAILED',
  status: 502,
  title: 'TLS handshake with the upstream failed',
});

// Certificate-bound tokens (RFC 8705 §3), checked on inbound mtls connections (src/sidecar/edge-check.ts).
const bindingError = (code: string, title: string): HttpErrorClass =>
  defineError({ code, status: 401, title, oauthError: 'invalid_token' });

/** A bound token arrived on a connection without a client certificate. */
export const TokenCertificateRequiredError = bindingError(
  'BATON_TOKEN_CERT_REQUIRED',
  'Certificate-bound token without a client certificate',
);
/** A bound token arrived on a connection presenting another certificate. */
export const TokenCertificateMismatchError = bindingError(
  'BATON_TOKEN_CERT_MISMATCH',
  'Certificate-bound token on another certificate',
);
/** The peer's SPIFFE ID maps to another service than the token's caller. */
export const TokenCallerMismatchError = bindingError(
  'BATON_TOKEN_CALLER_MISMATCH',
  'Token caller is not the connected workload',
);
/** In mtls mode, a mesh token without `cnf`: a bearer token the mesh no longer accepts. */
export const TokenUnboundError = bindingError('BATON_TOKEN_UNBOUND', 'Mesh token not bound to a certificate');
/** A mesh token on the plaintext entrypoint port, which takes external-IdP tokens only. */
export const MeshTokenOnPlaintextError = bindingError(
  'BATON_TOKEN_MESH_ON_PLAINTEXT',
  'Mesh token on the plaintext entrypoint port',
);
/** A client certificate that chains to the bundle but names no service of the mesh. */
export const PeerUnmappedError = defineError({
  code: 'BATON_PEER_UNMAPPED',
  status: 403,
  title: 'Client certificate names no service',
});
/** A client certificate from the bundle that is a CA certificate: never a workload, whatever SPIFFE ID it carries (X509-SVID §4.1). */
export const PeerNotWorkloadError = defineError({
  code: 'BATON_PEER_NOT_WORKLOAD',
  status: 403,
  title: "Client certificate is a CA certificate, not a workload's",
});
