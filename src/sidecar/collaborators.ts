/**
 * What the data plane needs from its collaborators, declared once (STYLE
 * rule 5): the policy source (src/policy/), the token verifier and the
 * verified-token cache (src/token/, whose own interfaces are used as they
 * are), the context handles (./context-handles.ts), the exchange client
 * (./exchange/exchanger.ts) and the forwarder (./pipeline.ts). Members are
 * function-typed properties, not methods, so an implementation or a test's
 * stand-in is checked with strict parameter variance; implementations
 * `satisfies` these interfaces.
 */
import type { CompiledPolicy } from '../policy/language/decision.ts';
import type { VerifiedTokenCache } from '../token/verified-cache.ts';
import type { AccessTokenVerifier } from '../token/verifier.ts';
import type { TokenExchanger } from './exchange/exchanger.ts';
import type { Logger } from 'pino';
import type { SubjectPseudonym } from '../telemetry/subject-pseudonym.ts';
import type { Tracing } from '../telemetry/tracing.ts';
import type { ContextHandles, RequestIds } from './context-handles.ts';
import type { ForwardSpec } from '../dataplane/forward-call.ts';
import type { RequestStream } from '../dataplane/stream.ts';
import type { SidecarMetrics } from './metrics.ts';

/**
 * The call-graph policy in force. A request reads `snapshot()` once: the
 * policy and its version as one value, so a reload during an await can
 * neither change the answer halfway nor log a version that did not decide.
 */
export interface PolicyView {
  readonly snapshot: () => PolicySnapshot | undefined;
  readonly version: () => number | undefined;
}

/** A policy and the version it was published as, read as one value. */
export interface PolicySnapshot {
  readonly policy: CompiledPolicy;
  readonly version: number;
}

/** The last step of every request: to the app, or to the upstream sidecar, in the protocol it came in (./pipeline.ts). */
export interface Forwarder {
  /** Resolves once the response has been written (or the client went away); rejects with a problem only before the response started. */
  forward(stream: RequestStream, target: ForwardSpec): Promise<number>;
  close(): void;
}

/** Everything the servers use, built from config (./wiring.ts) or passed in by tests. */
export interface Collaborators {
  readonly policy: PolicyView & {
    readonly onUpdate?: (listener: (policy: unknown, version: number) => void) => () => void;
  };
  readonly verifier: AccessTokenVerifier;
  readonly verifiedCache: VerifiedTokenCache;
  readonly handles: ContextHandles;
  /** Undefined until the STS token endpoint is known. */
  readonly exchanger: () => TokenExchanger | undefined;
  /** What readiness still waits for (`policy`, `sts keys`, `token endpoint`); empty when ready. */
  readonly waitingFor: () => string[];
  /**
   * Why the sidecar is not ready in a way a person must fix (a policy that
   * does not parse, a policy that does not name this service), one sentence
   * each; empty when nothing needs fixing, even while still waiting.
   */
  readonly problems?: () => string[];
  readonly close: () => Promise<void>;
}

/**
 * What both ports share (./inbound.ts, ./outbound.ts, ./pipeline.ts): one
 * value built once by ./sidecar.ts, so a field both read has one source.
 */
export interface SidecarContext {
  /** This sidecar's service, as the call graph names it. */
  readonly service: string;
  /** Ready to decide (a policy, the STS keys, a workload certificate in mtls mode): kept current by ./sidecar.ts, read per request. */
  readonly readiness: { readonly ready: boolean };
  readonly policy: PolicyView;
  readonly verifier: AccessTokenVerifier;
  readonly verifiedCache: VerifiedTokenCache;
  readonly handles: ContextHandles;
  readonly requestIds: RequestIds;
  readonly forwarder: Forwarder;
  readonly metrics: SidecarMetrics;
  readonly tracing: Tracing;
  readonly logger: Logger;
  readonly maxTokenBytes: number;
  readonly subjectPseudonym?: SubjectPseudonym;
}
