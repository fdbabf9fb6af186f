/**
 * Request headers an app would believe but only a proxy may set. The inbound
 * port drops the caller's copies and sets its own (docs/sidecar.md,
 * "Headers the app must not trust"):
 *
 * - method overrides (`X-HTTP-Method-Override`, `X-HTTP-Method`,
 *   `X-Method-Override`): frameworks that honour them would run a method the
 *   policy never checked (the decision is on the request line's method), so
 *   they are stripped, never relayed;
 * - client and origin facts (`Forwarded`, `X-Forwarded-Host`,
 *   `X-Forwarded-Proto`, `X-Real-IP`): what the caller claims about itself
 *   is unverifiable, so these say only what the sidecar saw on this hop.
 *   `X-Forwarded-For` keeps the caller's list with the peer appended
 *   (the rightmost entry is the one the sidecar vouches for).
 */
import type { RequestHead } from '../dataplane/exchange.ts';

export const METHOD_OVERRIDE_HEADERS: readonly string[] = ['x-http-method-override', 'x-http-method', 'x-method-override'];

/** Lower-case names the inbound port drops from the caller's request; it adds its own through `proxyHeaders`. */
export const UNTRUSTED_REQUEST_HEADERS: ReadonlySet<string> = new Set([...METHOD_OVERRIDE_HEADERS, 'forwarded', 'x-forwarded-host', 'x-forwarded-proto', 'x-real-ip', 'x-forwarded-for']);

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
