/**
 * Verified tokens by hash, so a hot caller does not pay a signature check
 * per request. Keyed by sha256 of the exact token bytes plus the audience;
 * preparse accepts one spelling per token, so the cache cannot be bypassed
 * or confused by re-encoding. Entries die at the token's `exp`, or at its
 * `reuseUntil` when that is earlier (an introspected token).
 *
 * `tokenDigest` is the name a token is known by in the caches (this one,
 * and `baton authz`'s decisions): SHA-256 of its exact bytes, base64url,
 * computed once per request and handed to each cache, not once per cache.
 */
import { hash } from 'node:crypto';
import { createExpiringLru } from '../core/expiring-lru.ts';
import type { VerifiedToken } from './verified-token.ts';

export function tokenDigest(token: string): string {
  return hash('sha256', token, 'base64url');
}

/** Function-typed members, not methods: a stand-in is checked with strict parameter variance. */
export interface VerifiedTokenCache {
  /** `digest`: the token's `tokenDigest` when the caller has it already. */
  readonly get: (token: string, audience: string, digest?: string) => VerifiedToken | undefined;
  readonly set: (token: string, audience: string, verified: VerifiedToken, digest?: string) => void;
  readonly size: number;
}

export interface VerifiedTokenCacheOptions {
  readonly max?: number;
  /** Milliseconds. */
  readonly now?: () => number;
}

export function createVerifiedTokenCache(options: VerifiedTokenCacheOptions = {}): VerifiedTokenCache {
  const entries = createExpiringLru<string, VerifiedToken>({
    max: options.max ?? 10_000,
    now: options.now ?? Date.now,
  });
  const keyOf = (token: string, audience: string, digest = tokenDigest(token)): string => `${digest}\n${audience}`;
  return {
    get: (token, audience, digest) => entries.get(keyOf(token, audience, digest)),
    set(token, audience, verified, digest) {
      entries.set(keyOf(token, audience, digest), verified, lastUse(verified) * 1000);
    },
    get size() {
      return entries.size;
    },
  };
}

/** Epoch seconds: the token's exp, or earlier when its issuer's answer may be trusted only so long (introspection). */
function lastUse(verified: VerifiedToken): number {
  return verified.reuseUntil === undefined ? verified.expiresAt : Math.min(verified.reuseUntil, verified.expiresAt);
}
