/**
 * The opaque `baton-context` handle the app holds instead of a bearer token
 * (DESIGN "By default the app never holds a bearer token"). The app sends it
 * back on outbound calls and the sidecar maps it to the subject token. A
 * handle is 32 random bytes, lives no longer than its token, and means
 * nothing outside this sidecar's memory, so a leaked handle is useless
 * elsewhere and dies with the pod.
 *
 * The store is bounded, and no caller can evict another's live handle
 * (issue #16: an LRU let enough distinct tokens push live users out):
 *
 * - a subject holds at most `maxPerSubject` handles; a new one replaces
 *   that subject's least recently used, never anyone else's;
 * - when the store is full, expired handles go first;
 * - when it is full of live handles, a new one is refused
 *   (HandlesExhaustedError, 503) and every live handle keeps working.
 */
import { randomBytes } from 'node:crypto';
import { tokenDigest } from '../token/token-digest.ts';
import { createExpiringLru } from '../core/expiring-lru.ts';
import type { ContextHandleEntry, ContextHandles } from './collaborators.ts';
import { HandlesExhaustedError } from './errors.ts';

export const CONTEXT_HANDLE_PREFIX = 'bctx_';

export type ContextHandleStore = ContextHandles & { readonly size: number };

export interface ContextHandleStoreOptions {
  readonly maxEntries?: number;
  readonly maxPerSubject?: number;
  /** Milliseconds. */
  readonly now?: () => number;
}

interface Entry extends ContextHandleEntry {
  readonly tokenHash: string;
  readonly subjectKey: string;
}

const HANDLE_SHAPE = /^bctx_[A-Za-z0-9_-]{43}$/;

export function createContextHandleStore(options: ContextHandleStoreOptions = {}): ContextHandleStore {
  const max = options.maxEntries ?? 10_000;
  const maxPerSubject = options.maxPerSubject ?? 64;
  const now = options.now ?? Date.now;
  const handleByToken = new Map<string, string>();
  // Per subject, its handles in least-recently-used order (Set insertion order; a use re-inserts).
  const bySubject = new Map<string, Set<string>>();
  // Full of live handles, the store refuses a new one: no caller can push out another's.
  const byHandle = createExpiringLru<string, Entry>({
    max,
    now,
    whenFull: 'refuse',
    onRemove(handle, entry) {
      handleByToken.delete(entry.tokenHash);
      const own = bySubject.get(entry.subjectKey);
      own?.delete(handle);
      if (own?.size === 0) bySubject.delete(entry.subjectKey);
    },
  });
  const touch = (handle: string, entry: Entry): void => {
    const own = bySubject.get(entry.subjectKey);
    own?.delete(handle);
    own?.add(handle);
  };

  return {
    issue(subjectToken, verified, digest) {
      const tokenHash = digest ?? tokenDigest(subjectToken);
      const existing = handleByToken.get(tokenHash);
      if (existing !== undefined) {
        const entry = byHandle.get(existing);
        if (entry !== undefined) {
          touch(existing, entry);
          return existing;
        }
      }
      const subjectKey = `${verified.issuer}\n${verified.subject}`;
      const own = bySubject.get(subjectKey);
      // This subject's own least recently used handle makes room; nobody else's.
      if (own !== undefined && own.size >= maxPerSubject) byHandle.delete(own.values().next().value as string);
      const handle = CONTEXT_HANDLE_PREFIX + randomBytes(32).toString('base64url');
      const expiresAtMs = verified.expiresAt * 1000;
      // A token past its exp but inside the verifier's clock skew: its handle is never stored, so it resolves to nothing, like an expired one.
      if (expiresAtMs <= now()) return handle;
      if (!byHandle.set(handle, { subjectToken, verified, tokenHash, subjectKey }, expiresAtMs)) {
        const retryAfter = Math.max(1, Math.ceil((byHandle.earliestExpiry - now()) / 1000));
        throw new HandlesExhaustedError(`expected room for a baton-context handle, all ${max} are held by live tokens`, { extensions: { retryAfter } });
      }
      handleByToken.set(tokenHash, handle);
      const mine = bySubject.get(subjectKey);
      if (mine === undefined) bySubject.set(subjectKey, new Set([handle]));
      else mine.add(handle);
      return handle;
    },
    resolve(handle) {
      // Shape first: a garbage header costs a regex, not a map probe with an attacker-sized key.
      if (!HANDLE_SHAPE.test(handle)) return undefined;
      const entry = byHandle.get(handle);
      if (entry === undefined) return undefined;
      touch(handle, entry);
      return { subjectToken: entry.subjectToken, verified: entry.verified };
    },
    get size() {
      return byHandle.size;
    },
  } satisfies ContextHandleStore;
}
