/**
 * Hop-by-hop fields (RFC 9110 §7.6.1): they describe one connection, so a
 * proxy drops them, and every field its `Connection` header names, before
 * passing a message on.
 *
 * The framing fields are dropped too, always: `Content-Length`,
 * `Transfer-Encoding` and (on requests) `Host` are written again by
 * src/dataplane/wire.ts from the framing baton's own parser decided, never
 * carried over from what survives this filter. The parser has already
 * refused a `Connection` option that names one of them
 * (src/dataplane/http1-parser.ts, reason `connection`); dropping them here
 * as well means a filter bug can lose a field but never a message boundary.
 */
import type { MessageHead } from './http1-parser.ts';

// RFC 9110 §7.6.1, plus the pre-standard ones proxies still see.
const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
]);
// Written from the data plane's own framing (src/dataplane/wire.ts), per direction.
const REQUEST_FRAMING: ReadonlySet<string> = new Set(['content-length', 'host']);
const RESPONSE_FRAMING: ReadonlySet<string> = new Set(['content-length']);

/**
 * A head's fields minus hop-by-hop fields, framing fields and those its
 * `Connection` names, in the order received; `alsoDrop` (given the
 * lower-cased name) drops more, as a hop's own rules say.
 */
export function endToEndHeaders(
  head: Pick<MessageHead, 'rawHeaders' | 'connection'>,
  kind: 'request' | 'response',
  alsoDrop?: (lowerName: string) => boolean,
): string[] {
  const framing = kind === 'request' ? REQUEST_FRAMING : RESPONSE_FRAMING;
  const named = head.connection;
  const raw = head.rawHeaders;
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    if (
      HOP_BY_HOP.has(name) ||
      framing.has(name) ||
      (named.length > 0 && named.includes(name)) ||
      alsoDrop?.(name) === true
    )
      continue;
    out.push(raw[i] as string, raw[i + 1] as string);
  }
  return out;
}
