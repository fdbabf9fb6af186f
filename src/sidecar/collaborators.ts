/**
 * What the data plane needs from its collaborators, as narrow structural
 * types (STYLE rule 5): the token verifier and caches (src/token/), the
 * exchange client and context-handle store (src/sidecar/exchange/,
 * context-handles.ts) and the policy source (src/policy/) all satisfy them,
 * and tests can pass small stand-ins.
 */
import type { CompiledPolicy } from '../policy/decision.ts';

/** The parts of a verified access token the sidecar reads (src/token/verifier.ts). */
export interface VerifiedSubject {
  readonly kind: 'mesh' | 'external';
  readonly subject: string;
  readonly user: boolean;
  /** Callers, origin first; empty for an external IdP's token. */
  readonly chain: readonly string[];
  readonly scopes: ReadonlySet<string>;
  readonly txn: string | undefined;
  readonly acr: string | undefined;
  /** Epoch seconds. */
  readonly expiresAt: number;
}

export interface TokenVerifier<V extends VerifiedSubject = VerifiedSubject> {
  verify(token: string, expected: { audience: string }): Promise<V>;
}

export interface VerifiedTokenCache<V extends VerifiedSubject = VerifiedSubject> {
  get(token: string, audience: string): V | undefined;
  set(token: string, audience: string, verified: V): void;
}

export interface ContextHandles<V extends VerifiedSubject = VerifiedSubject> {
  issue(subjectToken: string, verified: V): string;
  resolve(handle: string): { subjectToken: string; verified: V } | undefined;
}

export interface IssuedToken {
  readonly accessToken: string;
  /** Epoch seconds. */
  readonly expiresAt: number;
  readonly scope: string;
  readonly issuedTokenType: string;
  readonly cached: 'hit' | 'miss' | 'stale-refresh';
}

export interface TokenExchanger {
  exchange(req: { subjectToken: string; subjectTokenType: string; audience: string; scope?: string }): Promise<IssuedToken>;
  serviceToken(req: { audience: string; scope?: string }): Promise<IssuedToken>;
}

/** The call-graph policy in force; read once per request so a reload never changes a request halfway. */
export interface PolicyView {
  current(): CompiledPolicy | undefined;
  version(): number | undefined;
}
