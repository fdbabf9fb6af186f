/**
 * What may pass the sidecar's edge, checked in the order a request meets
 * the checks:
 *
 * - the TLS peer: its certificate's SPIFFE ID maps to a service, once per
 *   connection (`peerOf`);
 * - certificate-bound tokens (RFC 8705 §3): a token the STS bound to a
 *   certificate is good only on a connection that presents exactly that
 *   certificate, from the workload the token names as its caller, so a
 *   token stolen from an app, a log or a captured request is useless to
 *   anyone without the caller's private key (`checkTokenBinding`: pure, the
 *   peer read and the token verified before it runs; every refusal its own
 *   code, 401 `invalid_token`);
 * - the call graph: one decision, its audit line and its metric, and what
 *   the request does about it: go on (allow, or a shadow-mode deny recorded
 *   as `would_deny`), or stop with 403 naming the rule — 401 with an RFC
 *   9470 step-up challenge when only the `acr` was short
 *   (`checkSidecarEdge`).
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { ServiceMap } from '../identity/service-map.ts';
import { peerIdentity } from '../identity/tls.ts';
import type { VerifiedToken } from '../token/verified-token.ts';
import { IdentityError } from '../identity/errors.ts';
import {
  MeshTokenOnPlaintextError,
  PeerNotWorkloadError,
  PeerUnmappedError,
  TokenCallerMismatchError,
  TokenCertificateMismatchError,
  TokenCertificateRequiredError,
  StepUpRequiredError,
  TokenUnboundError,
} from './errors.ts';
import type { CompiledPolicy, Decision, DecisionInput, Deny } from '../policy/language/decision.ts';
import type { HttpError } from '../core/errors.ts';
import { writeAuditEvent } from '../telemetry/audit-event.ts';
import { recordDecisionSpan } from '../telemetry/decision-span.ts';
import type { Logger } from 'pino';
import type { SubjectPseudonym } from '../telemetry/subject-pseudonym.ts';
import type { Direction, SidecarMetrics } from './metrics.ts';
import { PolicyDeniedError } from '../policy/language/errors.ts';

// --- the peer and the token bound to it ---

export const BINDING_ERROR_CODES: ReadonlySet<string> = new Set([
  TokenCertificateRequiredError.code,
  TokenCertificateMismatchError.code,
  TokenCallerMismatchError.code,
  TokenUnboundError.code,
  MeshTokenOnPlaintextError.code,
  PeerUnmappedError.code,
  PeerNotWorkloadError.code,
]);

/** The verified TLS peer of the connection: its service (by the SPIFFE rule) and certificate thumbprint. */
export interface Peer {
  readonly service: string;
  readonly spiffeId: string;
  /**
   * `x5t#S256` of the certificate the peer presented. Always known to the
   * sidecar, which terminates TLS itself. `baton authz` knows it when the
   * proxy that terminated TLS passed the certificate on; when the proxy
   * passed the peer's principal only, it is undefined and the token's caller
   * is held to that principal (docs/security.md, "Authorizer mode").
   */
  readonly thumbprint: string | undefined;
}

/**
 * Which listener the request came in on: `plaintext` mode (no mesh TLS at
 * all), the `mtls` inbound port, or the entrypoint's `plaintext-entry`
 * port behind an ingress, in mtls mode.
 */
export type Listener = 'plaintext' | 'mtls' | 'plaintext-entry';

/** Throws the refusal, or returns when the token may be used on this connection. */
export function checkTokenBinding(
  verified: Pick<VerifiedToken, 'kind' | 'confirmation' | 'chain' | 'clientId'>,
  peer: Peer | undefined,
  listener: Listener,
): void {
  const mesh = verified.kind === 'mesh';
  // The entrypoint's plaintext port is for the ingress's external tokens: a mesh token there was lifted off the mesh.
  if (listener === 'plaintext-entry' && mesh)
    throw new MeshTokenOnPlaintextError(
      'expected a token from an external identity provider on the plaintext entrypoint port, got a mesh token',
    );
  const confirmation = verified.confirmation;
  if (confirmation !== undefined) {
    // RFC 8705 §3: the thumbprint of the certificate on this connection must equal cnf.x5t#S256. A peer known by
    // its principal alone (authorizer mode) can stand for a mesh token's caller below, never for an external token's key.
    if (peer === undefined || (peer.thumbprint === undefined && !mesh))
      throw new TokenCertificateRequiredError(
        'expected the client certificate this token is bound to, got a connection without one',
      );
    if (peer.thumbprint !== undefined && peer.thumbprint !== confirmation)
      throw new TokenCertificateMismatchError(
        'expected the client certificate this token is bound to (cnf.x5t#S256), got another certificate',
      );
  } else if (mesh && listener !== 'plaintext') {
    throw new TokenUnboundError(
      "expected a mesh token bound to its caller's certificate (cnf.x5t#S256), got a bearer token",
    );
  }
  if (mesh && peer !== undefined) {
    // The caller the token names (client_id, the outermost act) is the workload on the other end of this connection.
    const caller = verified.chain[verified.chain.length - 1];
    if (caller !== peer.service || (verified.clientId !== undefined && verified.clientId !== peer.service)) {
      throw new TokenCallerMismatchError(
        `expected a token whose caller is the connected workload ${peer.service}, got one naming ${caller ?? 'no caller'}`,
      );
    }
  }
}

/**
 * The verified peer of a TLS request, mapped to its service; undefined on a
 * plaintext socket or when no certificate was presented. A certificate
 * from the bundle that maps to no service, or that is a CA certificate
 * (X509-SVID §4.1: a signing certificate is no workload, whatever SPIFFE ID
 * it carries), is refused outright.
 *
 * Mapped once per connection: the peer's certificate cannot change on it
 * (TLS 1.3 only, no renegotiation), and a service map is immutable, so the
 * answer for this socket and this map is cached beside the socket. Mapping
 * parses the SPIFFE ID twice (`serviceOf`, then `idOf` back): ≈ 5.3 µs per
 * keep-alive request against ≈ 0.05 µs for the lookup (#28; a
 * microbenchmark of `serviceOf` on Node.js 24, load average ≈ 15). A
 * refusal is not cached: it is computed again, as strictly, on every request.
 */
export function peerOf(socket: Socket, map: ServiceMap): Peer | undefined {
  if (!(socket instanceof TLSSocket)) return undefined;
  const cached = MAPPED_PEERS.get(socket);
  if (cached !== undefined && cached.map === map) return cached.peer;
  let identity: ReturnType<typeof peerIdentity>;
  try {
    identity = peerIdentity(socket);
  } catch (error) {
    if (error instanceof IdentityError && error.code === PeerNotWorkloadError.code)
      throw new PeerNotWorkloadError(error.message, { cause: error });
    throw error;
  }
  let peer: Peer | undefined;
  if (identity !== undefined) {
    const service = map.serviceOf(identity.spiffeId);
    if (service === undefined)
      throw new PeerUnmappedError(
        `expected a client certificate whose SPIFFE ID maps to a service, got ${identity.spiffeId}`,
      );
    peer = Object.freeze({ service, spiffeId: identity.spiffeId, thumbprint: identity.thumbprint });
  }
  MAPPED_PEERS.set(socket, { map, peer });
  return peer;
}

/** Per connection, the map it was mapped with and the answer; dropped with the socket. */
const MAPPED_PEERS = new WeakMap<TLSSocket, { readonly map: ServiceMap; readonly peer: Peer | undefined }>();

// --- the call graph ---

export interface EdgeContext {
  readonly direction: Direction;
  readonly service: string;
  readonly subject: string | undefined;
  /** The issuer that authenticated the subject: with `subject`, the user's identity. */
  readonly subjectIssuer?: string | undefined;
  readonly txn: string | undefined;
  /** The request this call belongs to (./context-handles.ts `createRequestIds`): one id per request, where txn is one per user token. */
  readonly request: string | undefined;
  readonly policyVersion: number | undefined;
  readonly logger: Logger;
  readonly metrics: SidecarMetrics;
  /** Tracing on: the decision is also a span event (off, nothing is built for it). */
  readonly traced?: boolean;
  /** `baton.subject` in spans; without it spans carry no subject. */
  readonly pseudonym?: SubjectPseudonym;
  /** Inbound over mTLS: the SPIFFE ID of the connected peer. */
  readonly peer?: string;
  /** Inbound: whether the token was certificate-bound (RFC 8705 §3). */
  readonly bound?: boolean;
}

/**
 * The sidecar's check of one call against the call graph: decides, audits, and throws when the call must stop.
 * `known` is a decision this policy already made for this same input (`baton authz`'s decision cache,
 * src/authz/decision-cache.ts): the call is audited, counted and answered exactly as if decided now.
 */
export function checkSidecarEdge(
  policy: CompiledPolicy,
  input: DecisionInput,
  context: EdgeContext,
  known?: Decision,
): Decision {
  const decision = known ?? policy.decide(input);
  const outcome = decision.allowed ? 'allow' : decision.mode === 'shadow' ? 'would_deny' : 'deny';
  context.metrics.decision(decision.rule, outcome);
  // What enforcing would break, by target and rule (docs/rollout.md).
  if (outcome === 'would_deny') context.metrics.shadowDenial(input.target, decision.rule);
  if (context.traced !== false) {
    recordDecisionSpan(
      {
        direction: context.direction,
        subject: context.subject,
        subjectIssuer: context.subjectIssuer,
        chain: input.chain,
        target: input.target,
        txn: context.txn,
        policyVersion: context.policyVersion,
        rule: decision.rule,
        decision: outcome,
        cause: decision.allowed ? undefined : decision.cause,
      },
      context.pseudonym,
    );
  }
  const refusal = decision.allowed || decision.mode === 'shadow' ? undefined : refusalOf(decision);
  // The audit line: who, through whom, to what, which rule, what answer, and the status the caller got.
  // Never a token or a handle. `service`, trace_id and span_id come from the logger (src/telemetry/logger.ts).
  writeAuditEvent(context.logger, {
    event: 'decision',
    component: 'sidecar',
    direction: context.direction,
    subject: context.subject,
    subjectIssuer: context.subjectIssuer,
    chain: input.chain,
    target: input.target,
    method: input.method,
    path: input.path,
    // user, scopes and acr let `baton policy observed` re-decide this call and `suggest` write its rule.
    // acr is null when the token had none, so a reader can tell that from a line written before acr was logged.
    user: input.user,
    scopes: [...input.scopes],
    acr: input.acr ?? null,
    rule: decision.rule,
    decision: outcome,
    cause: decision.allowed ? undefined : decision.cause,
    status: refusal?.status,
    txn: context.txn,
    request: context.request,
    policyVersion: context.policyVersion,
    peer: context.peer,
    bound: context.bound,
  });
  if (refusal !== undefined) throw refusal;
  return decision;
}

function refusalOf(decision: Deny): HttpError {
  if (decision.cause === 'acr' && decision.acrValues !== undefined && decision.acrValues.length > 0) {
    return new StepUpRequiredError(decision.reason, {
      extensions: { rule: decision.rule, cause: decision.cause, acr_values: decision.acrValues.join(' ') },
    });
  }
  return new PolicyDeniedError(decision.reason, {
    reason: decision.cause,
    extensions: { rule: decision.rule, cause: decision.cause },
  });
}
