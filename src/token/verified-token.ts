/** What a verified access token tells the rest of baton. */
export type IssuerKind = 'mesh' | 'external';

export interface VerifiedToken {
  readonly claims: Readonly<Record<string, unknown>>;
  readonly issuer: string;
  readonly kind: IssuerKind;
  readonly subject: string;
  /** Mesh: `sub_type === 'user'`; external tokens always carry a user. */
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
  readonly jti: string | undefined;
  /** RFC 8705 §3.1 `cnf.x5t#S256`: the thumbprint of the one certificate this token may travel with. */
  readonly confirmation: string | undefined;
}
