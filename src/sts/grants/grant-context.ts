/** What a grant handler needs, passed in once by the server (STYLE rule 5). */
import type { PolicySnapshot } from '../../policy/distribution/source.ts';
import type { Logger } from 'pino';
import type { SubjectPseudonym } from '../../telemetry/subject-pseudonym.ts';
import type { ActorTokenVerifier } from '../actor-token.ts';
import type { AudienceResolver } from '../audience.ts';
import type { AuthenticatedClient } from '../client-auth.ts';
import type { TokenRequestParams } from '../form.ts';
import type { Minter } from '../mint.ts';
import type { SubjectTokenVerifier } from '../subject-token.ts';

export interface GrantContext {
  readonly issuer: string;
  readonly tokenTtlSeconds: number;
  /** Operator cap on services in a chain, over and above the policy's maxDepth. */
  readonly maxChainDepth: number | undefined;
  /** The policy in force with its version, read once per request (STYLE: values read together are read as one). */
  readonly policy: () => PolicySnapshot | undefined;
  readonly audiences: AudienceResolver;
  readonly subjectTokens: SubjectTokenVerifier;
  readonly actorTokens: ActorTokenVerifier;
  readonly mint: Minter;
  /** The audit log: one line per decision. */
  readonly logger: Logger;
  readonly now: () => number;
  /** `baton.subject` in spans; without it spans carry no subject. */
  readonly subjectPseudonym?: SubjectPseudonym;
}

/** RFC 8693 §2.2.1 / RFC 6749 §5.1 successful response. */
export interface TokenResponse {
  readonly access_token: string;
  readonly issued_token_type: string;
  readonly token_type: 'Bearer';
  readonly expires_in: number;
  /** Absent when no scope is granted: RFC 6749 §3.3 has no empty scope value. */
  readonly scope?: string;
}

export type GrantHandler = (
  params: TokenRequestParams,
  client: AuthenticatedClient,
  context: GrantContext,
) => Promise<TokenResponse>;
