/**
 * What the data plane needs from its collaborators, as narrow structural
 * types (STYLE rule 5): the token verifier and caches (src/token/), the
 * exchange client and context-handle store (src/sidecar/exchange/,
 * context-handles.ts) and the policy source (src/policy/) all satisfy them,
 * and tests can pass small stand-ins.
 */
import type { CompiledPolicy } from '../policy/language/decision.ts';
import type { VerifiedToken } from '../token/verified-token.ts';
import type { CertificateBinding, IssuedToken } from './exchange/exchanger.ts';

/** The parts of a verified access token the sidecar reads (src/token/verifier.ts). */
export type VerifiedSubject = Pick<VerifiedToken, 'kind' | 'subject' | 'subjectIssuer' | 'user' | 'chain' | 'scopes' | 'txn' | 'acr' | 'expiresAt'> & Partial<Pick<VerifiedToken, 'clientId' | 'confirmation'>>;

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


export interface TokenExchanger {
  exchange(req: { subjectToken: string; subjectTokenType: string; audience: string; scope?: string; binding?: CertificateBinding | undefined }): Promise<IssuedToken>;
  serviceToken(req: { audience: string; scope?: string; binding?: CertificateBinding | undefined }): Promise<IssuedToken>;
}

/**
 * The call-graph policy in force. A request reads `snapshot()` once: the
 * policy and its version as one value, so a reload during an await can
 * neither change the answer halfway nor log a version that did not decide.
 */
export interface PolicyView {
  snapshot(): { readonly policy: CompiledPolicy; readonly version: number } | undefined;
  version(): number | undefined;
}
