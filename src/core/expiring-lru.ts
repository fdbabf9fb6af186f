/**
 * A bounded map whose entries die at an absolute time: the one mechanism
 * behind the verified-token cache and the exchanged-token cache. Every
 * entry carries its own expiry (a token's `exp` is absolute, not a TTL from
 * now), time comes from an injected clock, and an expired entry is never
 * returned.
 *
 * A `Map` keeps insertion order, so re-inserting on a hit makes the first
 * key the least recently used: a hit costs a delete and a set, and nothing
 * is allocated. Hand-written rather than `lru-cache`: that library measures
 * TTLs from insertion on its own monotonic clock, while every caller here
 * has an absolute epoch expiry and tests drive one injected clock.
 */

export interface ExpiringLruOptions<K, V> {
  /** Most entries held; at 0 nothing is stored. */
  readonly max: number;
  /** Epoch milliseconds. */
  readonly now: () => number;
  /**
   * What a full cache does with one more key: `evict` its least recently
   * used entry (a cache), or `refuse` it and keep every live entry (a store
   * whose entries someone holds, issue #16). Expired entries go first either way.
   */
  readonly whenFull?: 'evict' | 'refuse';
  /** Called for every entry that leaves other than by `set` over the same key: expired, evicted or deleted. */
  readonly onRemove?: (key: K, value: V) => void;
}

export interface ExpiringLru<K, V> {
  /** The live value, now the most recently used; undefined when absent or expired (and then removed). */
  get(key: K): V | undefined;
  /** Stores a value until `expiresAtMs`; false when it was not stored (already expired, max 0, or full with `refuse`). */
  set(key: K, value: V, expiresAtMs: number): boolean;
  delete(key: K): void;
  /** When the earliest entry expires (epoch ms); Infinity when none does. */
  readonly earliestExpiry: number;
  readonly size: number;
}

interface Entry<V> {
  readonly value: V;
  readonly expiresAtMs: number;
}

export function createExpiringLru<K, V>(options: ExpiringLruOptions<K, V>): ExpiringLru<K, V> {
  const { max, now, onRemove } = options;
  const refuse = options.whenFull === 'refuse';
  const entries = new Map<K, Entry<V>>();
  // No entry expires before this, so a full cache sweeps only once something has.
  let earliest = Number.POSITIVE_INFINITY;

  const remove = (key: K, entry: Entry<V>): void => {
    entries.delete(key);
    onRemove?.(key, entry.value);
  };
  const sweepExpired = (t: number): void => {
    earliest = Number.POSITIVE_INFINITY;
    for (const [key, entry] of entries) {
      if (entry.expiresAtMs <= t) remove(key, entry);
      else if (entry.expiresAtMs < earliest) earliest = entry.expiresAtMs;
    }
  };

  return {
    get(key) {
      const entry = entries.get(key);
      if (entry === undefined) return undefined;
      entries.delete(key);
      if (entry.expiresAtMs <= now()) {
        onRemove?.(key, entry.value);
        return undefined;
      }
      entries.set(key, entry);
      return entry.value;
    },
    set(key, value, expiresAtMs) {
      const t = now();
      if (max <= 0 || expiresAtMs <= t) return false;
      // Over the same key: the old value is replaced, not removed, and makes room for the new one.
      entries.delete(key);
      if (entries.size >= max && earliest <= t) sweepExpired(t);
      if (entries.size >= max) {
        if (refuse) return false;
        const oldest = entries.entries().next().value;
        if (oldest !== undefined) remove(oldest[0], oldest[1]);
      }
      entries.set(key, { value, expiresAtMs });
      if (expiresAtMs < earliest) earliest = expiresAtMs;
      return true;
    },
    delete(key) {
      const entry = entries.get(key);
      if (entry !== undefined) remove(key, entry);
    },
    get earliestExpiry() {
      return earliest;
    },
    get size() {
      return entries.size;
    },
  };
}
