/**
 * Which introspecting issuer an opaque token belongs to. An opaque token
 * names no issuer, and RFC 7662 §2.1 sends the token itself to the
 * introspection endpoint: sending it to another issuer's endpoint would
 * disclose it to that issuer. So a token goes to at most one endpoint, by
 * its prefix:
 *
 *   one introspecting issuer, no tokenPrefix → every opaque token goes to it
 *   an issuer with a tokenPrefix              → only tokens that start with it
 *   a token that starts with no prefix        → to none: refused, never sent
 *
 * With several introspecting issuers each has a prefix, the prefixes are
 * distinct and none is the start of another, so a token starts with at most
 * one of them. The config checks that at load (`prefixConflict` below,
 * src/token/issuer-profile-config.ts); the router checks it again at
 * construction.
 */

/** What an issuer's prefixes would break, for the config error: the two issuers (by position) and why. */
export interface PrefixConflict {
  /** The later of the two issuers, whose key the config error names. */
  readonly index: number;
  readonly other: number;
  readonly problem: 'missing' | 'same' | 'overlapping';
}

/** The first rule the prefixes of the introspecting issuers (in config order) break; undefined when a token can reach at most one. */
export function prefixConflict(prefixes: readonly (string | undefined)[]): PrefixConflict | undefined {
  if (prefixes.length < 2) return undefined;
  for (let index = 0; index < prefixes.length; index++) {
    const prefix = prefixes[index];
    if (prefix === undefined) return { index, other: index === 0 ? 1 : 0, problem: 'missing' };
    for (let other = 0; other < index; other++) {
      const earlier = prefixes[other] as string;
      if (earlier === prefix) return { index, other, problem: 'same' };
      if (earlier.startsWith(prefix) || prefix.startsWith(earlier)) return { index, other, problem: 'overlapping' };
    }
  }
  return undefined;
}

/** Picks the one issuer an opaque token may be sent to, or none. */
export function createOpaqueRouter<T extends { readonly tokenPrefix?: string | undefined }>(
  issuers: readonly T[],
): (token: string) => T | undefined {
  const conflict = prefixConflict(issuers.map((issuer) => issuer.tokenPrefix));
  if (conflict !== undefined)
    throw new TypeError(
      `expected introspecting issuers told apart by distinct, non-overlapping token prefixes, got issuers ${conflict.other} and ${conflict.index}: ${conflict.problem}`,
    );
  const only = issuers.length === 1 ? issuers[0] : undefined;
  if (only !== undefined && only.tokenPrefix === undefined) return () => only;
  return (token) => issuers.find((issuer) => token.startsWith(issuer.tokenPrefix as string));
}
