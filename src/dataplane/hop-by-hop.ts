/**
 * Hop-by-hop fields (RFC 9110 §7.6.1): they describe one connection, so a
 * proxy drops them, and every field its `Connection` header names, before
 * passing a message on. The framing fields among them (Transfer-Encoding)
 * are written again by the forwarder for the connection it writes to.
 */

// RFC 9110 §7.6.1, plus the pre-standard ones proxies still see.
const HOP_BY_HOP: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'proxy-authorization']);

/** The lower-case names a raw header list's `Connection` fields name; undefined when it has none. */
function connectionTokens(rawHeaders: readonly string[]): Set<string> | undefined {
  let named: Set<string> | undefined;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (name.length !== 10 || name.toLowerCase() !== 'connection') continue;
    named ??= new Set();
    for (const token of (rawHeaders[i + 1] as string).split(',')) named.add(token.trim().toLowerCase());
  }
  return named;
}

/**
 * A raw header list minus hop-by-hop fields and those its `Connection`
 * names, in the order received; `alsoDrop` (given the lower-cased name)
 * drops more, as a hop's own rules say.
 */
export function endToEndHeaders(rawHeaders: readonly string[], alsoDrop?: (lowerName: string) => boolean): string[] {
  const named = connectionTokens(rawHeaders);
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] as string).toLowerCase();
    if (HOP_BY_HOP.has(name) || named?.has(name) || alsoDrop?.(name) === true) continue;
    out.push(rawHeaders[i] as string, rawHeaders[i + 1] as string);
  }
  return out;
}
