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
  const out: string[] = [IdentityHeader.subject, headerSafe(identity.subject)];
  if (caller !== undefined) out.push(IdentityHeader.caller, headerSafe(caller));
  if (identity.chain.length > 0) out.push(IdentityHeader.chain, identity.chain.map(headerSafe).join(','));
  out.push(IdentityHeader.scope, headerSafe([...identity.scopes].sort().join(' ')));
  if (identity.txn !== undefined) out.push(IdentityHeader.txn, headerSafe(identity.txn));
  if (identity.request !== undefined) out.push(IdentityHeader.request, identity.request);
  if (identity.contextHandle !== undefined) out.push(IdentityHeader.context, identity.contextHandle);
  return out;
}

/**
 * Claim values are attacker-influenced strings (a user id from an IdP):
 * percent-encode anything outside visible ASCII and space, and `%` and `,`
 * themselves, so a value can neither split a header (CR/LF) nor forge an
 * extra chain member.
 */
export function headerSafe(value: string): string {
  let safe = true;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25 || c === 0x2c) {
      safe = false;
      break;
    }
  }
  if (safe) return value;
  return Array.from(new TextEncoder().encode(value), (byte) =>
    byte < 0x20 || byte > 0x7e || byte === 0x25 || byte === 0x2c ? `%${byte.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(byte),
  ).join('');
}
