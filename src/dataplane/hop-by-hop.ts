/**
 * Hop-by-hop fields (RFC 9110 §7.6.1): they describe one connection, so a
 * proxy drops them, and every field its `Connection` header names, before
 * passing a message on. The framing fields among them (Transfer-Encoding)
 * are written again by the forwarder for the connection it writes to.
 */

// RFC 9110 §7.6.1, plus the pre-standard ones proxies still see.
export const HOP_BY_HOP: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'proxy-authorization']);

/** The lower-case names a raw header list's `Connection` fields name; undefined when it has none. */
export function connectionTokens(rawHeaders: readonly string[]): Set<string> | undefined {
  let named: Set<string> | undefined;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (name.length !== 10 || name.toLowerCase() !== 'connection') continue;
    named ??= new Set();
    for (const token of (rawHeaders[i + 1] as string).split(',')) named.add(token.trim().toLowerCase());
  }
  return named;
}

/** A response's raw header list minus hop-by-hop fields and those its `Connection` names, in the order received. */
export function endToEndHeaders(rawHeaders: readonly string[]): string[] {
  const named = connectionTokens(rawHeaders);
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] as string).toLowerCase();
    if (HOP_BY_HOP.has(name) || named?.has(name)) continue;
    out.push(rawHeaders[i] as string, rawHeaders[i + 1] as string);
  }
  return out;
}
