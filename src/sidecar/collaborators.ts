/**
 * What the data plane needs from its collaborators, declared once (STYLE
 * rule 5): the policy source (src/policy/), the token verifier and the
 * verified-token cache (src/token/, whose own interfaces are used as they
 * are), the context handles (./context-handles.ts) and the exchange
 * client (./exchange/exchanger.ts). Members are function-typed properties,
 * not methods, so an implementation or a test's stand-in is checked with
 * strict parameter variance; implementations `satisfies` these interfaces.
 */
import type { CompiledPolicy } from '../policy/language/decision.ts';
import type { VerifiedTokenCache } from '../token/verified-cache.ts';
import type { AccessTokenVerifier } from '../token/verifier.ts';
import type { VerifiedToken } from '../token/verified-token.ts';
import type { ExchangeRequest, IssuedToken, ServiceTokenRequest } from './exchange/exchanger.ts';

/** What a `baton-context` handle opens to: the subject token and the inbound request it was issued for. */
export interface OpenedContextHandle {
  readonly subjectToken: string;
  /** The `request` id of the inbound request (./request-id.ts). */
  readonly requestId: string;
}

/** Sealed handles (./context-handles.ts): nothing is stored, so nothing can fill up. */
export interface ContextHandles {
  /** A handle for a verified token, bound to the inbound request's id; it opens until the token's exp. */
  readonly issue: (subjectToken: string, verified: Pick<VerifiedToken, 'expiresAt'>, requestId: string) => string;
  /** Undefined when altered, sealed by another process, or past the token's exp. */
  readonly resolve: (handle: string) => OpenedContextHandle | undefined;
}

export interface TokenExchanger {
  /** RFC 8693 token exchange for the subject an inbound request carried. */
  readonly exchange: (request: ExchangeRequest) => Promise<IssuedToken>;
  /** This service's own token (client credentials), for a call made on no one's behalf. */
  readonly serviceToken: (request: ServiceTokenRequest) => Promise<IssuedToken>;
}

/**
 * The call-graph policy in force. A request reads `snapshot()` once: the
 * policy and its version as one value, so a reload during an await can
 * neither change the answer halfway nor log a version that did not decide.
 */
export interface PolicyView {
  readonly snapshot: () => { readonly policy: CompiledPolicy; readonly version: number } | undefined;
  readonly version: () => number | undefined;
}

/** Everything the servers use, built from config (./wiring.ts) or passed in by tests. */
export interface Collaborators {
  readonly policy: PolicyView & { readonly onUpdate?: (listener: (policy: unknown, version: number) => void) => () => void };
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
