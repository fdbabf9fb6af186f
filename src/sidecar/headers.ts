/**
 * Every header the sidecar writes for the next hop, and the rules that
 * keep anyone else from writing them:
 *
 * - **Identity** (DESIGN.md, "Identity headers to the app"): `baton-subject`,
 *   `baton-caller`, `baton-chain`… Only the sidecar speaks in `baton-*`: every
 *   `baton-*` header a caller sends is removed, whatever its case, and so is
 *   `baton_*`, which proxies and frameworks that map `_` to `-` (CGI, nginx
 *   with `underscores_in_headers`, WSGI) would read as the same header.
 * - **Proxy facts** (docs/sidecar.md, "Headers the app must not trust"):
 *   method overrides (`X-HTTP-Method-Override`, `X-HTTP-Method`,
 *   `X-Method-Override`) would make a framework run a method the policy
 *   never checked, so they are stripped; client and origin facts
 *   (`Forwarded`, `X-Forwarded-Host`, `X-Forwarded-Proto`, `X-Real-IP`) are
 *   unverifiable claims of the caller, so they say only what the sidecar saw
 *   on this hop. `X-Forwarded-For` keeps the caller's list with the peer
 *   appended (the rightmost entry is the one the sidecar vouches for).
 * - **The forwarded list**: the caller's end-to-end fields, in order, less
 *   all of the above, with the sidecar's own appended (framing fields are
 *   the data plane's to write: src/dataplane/wire.ts).
 */
import type { MessageHead } from '../dataplane/http1-parser.ts';
import type { RequestHead } from '../dataplane/stream.ts';
import { endToEndHeaders } from '../dataplane/wire.ts';
import { InternalError } from '../core/errors.ts';
import type { VerifiedToken } from '../token/verified-token.ts';

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
  return (
    lowerName.length > 6 &&
    lowerName.startsWith('baton') &&
    (lowerName.charCodeAt(5) === 0x2d || lowerName.charCodeAt(5) === 0x5f)
  );
}

export interface Identity {
  readonly subject: string;
  readonly subjectIssuer: string;
  readonly user: boolean;
  readonly chain: readonly string[];
  readonly external: boolean;
  readonly scopes: ReadonlySet<string>;
  readonly txn: string | undefined;
  /** One id per request and the calls it causes (./context-handles.ts). */
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

/** The identity headers of a verified token, for the request `request` and the context handle sealed for it. */
export function verifiedIdentityHeaders(verified: VerifiedToken, request: string, contextHandle: string): string[] {
  return identityHeaders({
    subject: verified.subject,
    subjectIssuer: verified.subjectIssuer,
    user: verified.user,
    chain: verified.chain,
    external: verified.kind === 'external',
    scopes: verified.scopes,
    txn: verified.txn,
    request,
    contextHandle,
  });
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
  return Array.from(new TextEncoder().encode(value), (byte) =>
    mustEncode(byte) ? `%${byte.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(byte),
  ).join('');
}

function mustEncode(c: number): boolean {
  return c <= 0x20 || c > 0x7e || c === 0x25 || c === 0x2c;
}

// --- proxy facts ---

export const METHOD_OVERRIDE_HEADERS: readonly string[] = [
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
];

/** Lower-case names the inbound port drops from the caller's request; it adds its own through `proxyHeaders`. */
export const UNTRUSTED_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  ...METHOD_OVERRIDE_HEADERS,
  'forwarded',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-real-ip',
  'x-forwarded-for',
]);

/** The proxy headers for this hop, as a flat `[name, value, …]` list. */
export function proxyHeaders(req: RequestHead): string[] {
  const peer = req.socket.remoteAddress ?? 'unknown';
  const proto = (req.socket as { encrypted?: boolean }).encrypted === true ? 'https' : 'http';
  const host = typeof req.headers.host === 'string' ? req.headers.host : undefined;
  const out = ['x-forwarded-for', forwardedFor(req, peer), 'x-real-ip', peer, 'x-forwarded-proto', proto];
  // RFC 7239 §4: one element for this hop; a host with a port or an IPv6 node must be a quoted-string.
  let forwarded = `for=${forwardedNode(peer)};proto=${proto}`;
  if (host !== undefined && /^[A-Za-z0-9.\-:[\]]{1,255}$/.test(host)) {
    out.push('x-forwarded-host', host);
    forwarded += `;host="${host}"`;
  }
  out.push('forwarded', forwarded);
  return out;
}

function forwardedFor(req: RequestHead, peer: string): string {
  const prior = req.headers['x-forwarded-for'];
  return prior === undefined ? peer : `${Array.isArray(prior) ? prior.join(', ') : prior}, ${peer}`;
}

function forwardedNode(address: string): string {
  if (address.includes(':')) return `"[${address}]"`;
  return /^[0-9.]+$/.test(address) ? address : '"unknown"';
}

// --- the forwarded list ---

export interface HeaderRules {
  /** Drop the caller's Authorization (the sidecar sets its own, or the app gets none). */
  readonly dropAuthorization: boolean;
  /** Further lower-case names to drop (the caller replaces them through `add`). */
  readonly drop?: ReadonlySet<string>;
  /** Appended after filtering: `[name, value, …]`. */
  readonly add: readonly string[];
}

/**
 * The request header list to send on, from the raw list the parser kept
 * (repeated fields stay repeated): hop-by-hop fields, framing fields and
 * those `Connection` names removed (RFC 9110 §7.6.1; the data plane writes
 * Host and the framing itself, src/dataplane/wire.ts), every `baton-*`
 * removed, `Expect` removed (the sidecar answers a 100-continue itself,
 * once the request is allowed). The added values are checked: none may
 * split the head.
 */
// RFC 9110 §5.5 field-value, narrowed to what the sidecar itself writes: visible ASCII, space and tab.
const FIELD_TEXT = /^[\x20-\x7e\t]*$/;

export function forwardRequestHeaders(
  head: Pick<MessageHead, 'rawHeaders' | 'connection'>,
  rules: HeaderRules,
): string[] {
  const out = endToEndHeaders(
    head,
    'request',
    (name) =>
      isBatonHeader(name) ||
      name === 'expect' ||
      (rules.dropAuthorization && name === 'authorization') ||
      rules.drop?.has(name) === true,
  );
  for (const value of rules.add) {
    if (!FIELD_TEXT.test(value))
      throw new InternalError('expected header values of visible ASCII, built one holding another character');
    out.push(value);
  }
  return out;
}
