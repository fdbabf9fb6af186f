/**
 * Claims of the tokens baton mints and reads (DESIGN.md, "Token"): an
 * RFC 9068 JWT access token with an RFC 8693 §4.1 `act` chain.
 */

/** RFC 8693 §4.1: the current actor, with prior actors nested inside, newest outermost. */
export interface ActClaim {
  readonly sub: string;
  readonly act?: ActClaim;
  /** Other members (e.g. `iss`) are informational and ignored for chain checks. */
  readonly [member: string]: unknown;
}

/**
 * `sub_type` tells a user subject from a service identity. RFC 9068 has no
 * claim for it and a service name could collide with a user id, so baton
 * says it explicitly: `user` for delegated tokens, `service` for
 * client-credentials tokens and their exchanges.
 */
export type SubjectType = 'user' | 'service';

/**
 * RFC 9493 §3.2.5 `iss_sub`: a subject named together with the issuer that
 * authenticated it. `sub` is unique only within one issuer; two identity
 * providers may both have an `alice`.
 */
export interface IssSubIdentifier {
  readonly format: 'iss_sub';
  readonly iss: string;
  readonly sub: string;
}

export function issSub(iss: string, sub: string): IssSubIdentifier {
  return { format: 'iss_sub', iss, sub };
}

export interface BatonAccessTokenClaims {
  readonly iss: string;
  readonly sub: string;
  /** RFC 9493 §4.1: the same subject as `sub`, qualified by the issuer that authenticated it. */
  readonly sub_id: IssSubIdentifier;
  /** Exactly one audience: the target service. */
  readonly aud: string;
  /** The immediate caller (RFC 9068 §2.2). */
  readonly client_id: string;
  readonly exp: number;
  readonly iat: number;
  readonly nbf?: number;
  readonly jti: string;
  /** Space-separated (RFC 6749 §3.3). */
  readonly scope?: string;
  readonly act?: ActClaim;
  /** One id for the whole chain, minted at the entry hop. */
  readonly txn: string;
  readonly sub_type: SubjectType;
  readonly acr?: string;
  readonly auth_time?: number;
  /** RFC 8705 §3.1: the thumbprint of the client certificate the token is bound to. */
  readonly cnf?: { readonly 'x5t#S256': string };
  /** RFC 8693 §4.4: who may act for this subject. */
  readonly may_act?: { readonly sub: string; readonly [member: string]: unknown };
}

export function parseScope(scope: unknown): Set<string> {
  if (typeof scope !== 'string' || scope === '') return new Set();
  return new Set(scope.split(' ').filter((s) => s !== ''));
}

export function formatScope(scopes: Iterable<string>): string {
  return [...scopes].sort().join(' ');
}
