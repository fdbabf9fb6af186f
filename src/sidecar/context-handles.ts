/**
 * The opaque `baton-context` handle the app holds instead of a bearer token
 * (DESIGN "By default the app never holds a bearer token"). The app sends it
 * back on outbound calls and the sidecar maps it to the subject token. A
 * handle is 32 random bytes, lives no longer than its token, and means
 * nothing outside this sidecar's memory, so a leaked handle is useless
 * elsewhere and dies with the pod.
 */
import { hash, randomBytes } from 'node:crypto';
import type { VerifiedToken } from '../token/verified-token.ts';

export const CONTEXT_HANDLE_PREFIX = 'bctx_';

export interface ContextHandleEntry {
  readonly subjectToken: string;
  readonly verified: VerifiedToken;
}

export interface ContextHandleStore {
  /** The same live token always gets the same handle, so a hot path does not grow the store. */
  issue(subjectToken: string, verified: VerifiedToken): string;
  /** Undefined when unknown, evicted, or past the token's exp. */
  resolve(handle: string): ContextHandleEntry | undefined;
  readonly size: number;
}

export interface ContextHandleStoreOptions {
  readonly maxEntries?: number;
  /** Milliseconds. */
  readonly now?: () => number;
}

const HANDLE_SHAPE = /^bctx_[A-Za-z0-9_-]{43}$/;

export function createContextHandleStore(options: ContextHandleStoreOptions = {}): ContextHandleStore {
  const max = options.maxEntries ?? 10_000;
  const now = options.now ?? Date.now;
  // Map insertion order is the LRU order: a resolve or re-issue moves the entry to the end.
  const byHandle = new Map<string, ContextHandleEntry & { readonly tokenHash: string }>();
  const handleByToken = new Map<string, string>();

  const live = (entry: ContextHandleEntry): boolean => entry.verified.expiresAt * 1000 > now();
  const forget = (handle: string): void => {
    const entry = byHandle.get(handle);
    if (entry === undefined) return;
    byHandle.delete(handle);
    handleByToken.delete(entry.tokenHash);
  };
  const touch = (handle: string, entry: ContextHandleEntry & { readonly tokenHash: string }): void => {
    byHandle.delete(handle);
    byHandle.set(handle, entry);
  };

  return {
    issue(subjectToken, verified) {
      const tokenHash = hash('sha256', subjectToken, 'base64url');
      const existing = handleByToken.get(tokenHash);
      if (existing !== undefined) {
        const entry = byHandle.get(existing);
        if (entry !== undefined && live(entry)) {
          touch(existing, entry);
          return existing;
        }
        forget(existing);
      }
      const handle = CONTEXT_HANDLE_PREFIX + randomBytes(32).toString('base64url');
      byHandle.set(handle, { subjectToken, verified, tokenHash });
      handleByToken.set(tokenHash, handle);
      while (byHandle.size > max) {
        const oldest = byHandle.keys().next().value;
        if (oldest === undefined) break;
        forget(oldest);
      }
      return handle;
    },
    resolve(handle) {
      // Shape first: a garbage header costs a regex, not a map probe with an attacker-sized key.
      if (!HANDLE_SHAPE.test(handle)) return undefined;
      const entry = byHandle.get(handle);
      if (entry === undefined) return undefined;
      if (!live(entry)) {
        forget(handle);
        return undefined;
      }
      touch(handle, entry);
      return { subjectToken: entry.subjectToken, verified: entry.verified };
    },
    get size() {
      return byHandle.size;
    },
  };
}
