/**
 * The verified identity the sidecar hands the app (DESIGN.md, "Identity
 * headers to the app"), and the rule that keeps anyone else from setting
 * it: every `baton-*` header a caller sends is removed, whatever its case,
 * and so is `baton_*`, which proxies and frameworks that map `_` to `-`
 * (CGI, nginx with `underscores_in_headers`, WSGI) would read as the same
 * header.
 */

// Lower-cased once: node:http gives raw names in the sender's case.
export const IdentityHeader = {
  subject: 'baton-subject',
  /** The issuer that authenticated the subject: `baton-subject` is unique only together with it. */
  subjectIssuer: 'baton-subject-issuer',
  /** `user`, or `service` for a service-identity (client-credentials) call. */
  subjectType: 'baton-subject-type',
  caller: 'baton-caller',
  chain: 'baton-chain',
  scope: 'baton-scope',
  txn: 'baton-txn',
  request: 'baton-request',
  context: 'baton-context',
} as const;

/** `baton-caller` for a token straight from an external identity provider. */
export const EXTERNAL_CALLER = 'external';

/** True for a lower-cased header name in baton's namespace, spelled with `-` or `_`. */
export function isBatonHeader(lowerName: string): boolean {
  return lowerName.length > 6 && lowerName.startsWith('baton') && (lowerName.charCodeAt(5) === 0x2d || lowerName.charCodeAt(5) === 0x5f);
}

export interface Identity {
  readonly subject: string;
  readonly subjectIssuer: string;
  readonly user: boolean;
  readonly chain: readonly string[];
  readonly external: boolean;
  readonly scopes: ReadonlySet<string>;
  readonly txn: string | undefined;
  /** One id per request and the calls it causes (./request-id.ts). */
  readonly request?: string | undefined;
  readonly contextHandle: string | undefined;
}

/** The identity headers as a flat `[name, value, …]` list, ready to append to forwarded headers. */
export function identityHeaders(identity: Identity): string[] {
  const caller = identity.external ? EXTERNAL_CALLER : identity.chain[identity.chain.length - 1];
  const out: string[] = [
    IdentityHeader.subject,
    headerSafe(identity.subject),
    IdentityHeader.subjectIssuer,
    headerSafe(identity.subjectIssuer),
    IdentityHeader.subjectType,
    identity.user ? 'user' : 'service',
  ];
  if (caller !== undefined) out.push(IdentityHeader.caller, headerSafe(caller));
  if (identity.chain.length > 0) out.push(IdentityHeader.chain, identity.chain.map(headerSafe).join(','));
  // Space separates scope tokens (RFC 6749 §3.3), so each token is encoded alone.
  out.push(IdentityHeader.scope, [...identity.scopes].sort().map(headerSafe).join(' '));
  if (identity.txn !== undefined) out.push(IdentityHeader.txn, headerSafe(identity.txn));
  if (identity.request !== undefined) out.push(IdentityHeader.request, identity.request);
  if (identity.contextHandle !== undefined) out.push(IdentityHeader.context, identity.contextHandle);
  return out;
}

/**
 * Claim values are attacker-influenced strings (a user id from an IdP):
 * percent-encode (RFC 3986 §2.1, of the UTF-8 bytes) every byte that is not
 * visible ASCII, space included, and `%` and `,` themselves. A value can
 * then neither split a header (CR/LF), nor forge an extra chain member, nor
 * lose a leading or trailing space to the HTTP parser (RFC 9110 §5.5 strips
 * it), so `" alice"` and `"alice"` never reach the app as the same string.
 * Decoding is `decodeURIComponent`.
 */
export function headerSafe(value: string): string {
  let safe = true;
  for (let i = 0; i < value.length; i++) {
    if (mustEncode(value.charCodeAt(i))) {
      safe = false;
      break;
    }
  }
  if (safe) return value;
  return Array.from(new TextEncoder().encode(value), (byte) => (mustEncode(byte) ? `%${byte.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(byte))).join('');
}

function mustEncode(c: number): boolean {
  return c <= 0x20 || c > 0x7e || c === 0x25 || c === 0x2c;
}
