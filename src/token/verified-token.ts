/** What a verified access token tells the rest of baton. */
export type IssuerKind = 'mesh' | 'external';

export interface VerifiedToken {
  readonly claims: Readonly<Record<string, unknown>>;
  readonly issuer: string;
  readonly kind: IssuerKind;
  /** The subject claim the issuer's profile names (`sub`, `oid` for Entra). Unique only together with `subjectIssuer`. */
  readonly subject: string;
  /** The issuer that authenticated the subject: the external issuer itself, or the mesh token's RFC 9493 `sub_id.iss`. */
  readonly subjectIssuer: string;
  /** Mesh: `sub_type === 'user'`; external: the issuer profile's service-token rules. */
  readonly user: boolean;
  /** Callers origin first; empty for external tokens (their chain is not trusted). */
  readonly chain: readonly string[];
  readonly scopes: ReadonlySet<string>;
  readonly txn: string | undefined;
  readonly acr: string | undefined;
  readonly authTime: number | undefined;
  readonly clientId: string | undefined;
  /** Epoch seconds. */
  readonly expiresAt: number;
  /**
   * Epoch seconds: the latest a cache may reuse this verification, when
   * earlier than `expiresAt` (an introspected token: its answer is trusted
   * for `maxCacheSeconds` at most, so a revocation is seen).
   */
  readonly reuseUntil?: number;
  readonly jti: string | undefined;
  /** RFC 8705 §3.1 `cnf.x5t#S256`: the thumbprint of the one certificate this token may travel with. */
  readonly confirmation: string | undefined;
}
