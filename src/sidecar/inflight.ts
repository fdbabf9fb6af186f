/**
 * Bounded concurrency for one direction, and the count SIGTERM drains:
 * a request past `max` is refused at once with 503 rather than queued
 * behind a slow app (DESIGN.md, "app slow … bounded concurrency → 503").
 *
 * The limit is shared fairly: one peer address, or one user, may hold only
 * its share of it (`peerShare`, `subjectShare` × `max`), so a single token
 * trickling a thousand slow uploads cannot fill every slot (issue #16).
 */
import type { Exchange } from '../dataplane/exchange.ts';

export type ShareKind = 'peer' | 'subject';

export interface Inflight {
  /** Admits the request and releases it when its exchange is over; false when full. */
  admit(exchange: Exchange): boolean;
  /** Counts the admitted request against `key`'s share until its exchange is over; false (and not counted) when the share is used up. */
  share(exchange: Exchange, kind: ShareKind, key: string): boolean;
  count(): number;
  /** Resolves when nothing is in flight. */
  idle(): Promise<void>;
}

export interface InflightShares {
  /** Fraction of `max` one peer address may hold; 1 turns the bound off. */
  readonly peer: number;
  /** Fraction of `max` one user may hold; 1 turns the bound off. */
  readonly subject: number;
}

export function createInflight(max: number, onChange?: (delta: 1 | -1) => void, shares: InflightShares = { peer: 1, subject: 1 }): Inflight {
  let count = 0;
  let waiters: Array<() => void> = [];
  const limits: Readonly<Record<ShareKind, number>> = { peer: Math.max(1, Math.floor(max * shares.peer)), subject: Math.max(1, Math.floor(max * shares.subject)) };
  // Keyed by kind and key; entries leave when their count returns to 0, so the map is bounded by what is in flight.
  const held = new Map<string, number>();
  const release = (): void => {
    count--;
    onChange?.(-1);
    if (count === 0) {
      const done = waiters;
      waiters = [];
      for (const resolve of done) resolve();
    }
  };
  return {
    admit(exchange) {
      if (count >= max) return false;
      count++;
      onChange?.(1);
      exchange.onClose(release);
      return true;
    },
    share(exchange, kind, key) {
      const limit = limits[kind];
      if (limit >= max) return true;
      const id = `${kind}\n${key}`;
      const n = held.get(id) ?? 0;
      if (n >= limit) return false;
      held.set(id, n + 1);
      exchange.onClose(() => {
        const left = (held.get(id) ?? 1) - 1;
        if (left <= 0) held.delete(id);
        else held.set(id, left);
      });
      return true;
    },
    count: () => count,
    idle: () => (count === 0 ? Promise.resolve() : new Promise((resolve) => waiters.push(resolve))),
  };
}
