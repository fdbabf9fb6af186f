/**
 * Bounded concurrency for one direction, and the count SIGTERM drains:
 * a request past `max` is refused at once with 503 rather than queued
 * behind a slow app (DESIGN.md, "app slow … bounded concurrency → 503").
 */
import type { ServerResponse } from 'node:http';

export interface Inflight {
  /** Admits the request and releases it when its response closes; false when full. */
  admit(res: ServerResponse): boolean;
  count(): number;
  /** Resolves when nothing is in flight. */
  idle(): Promise<void>;
}

export function createInflight(max: number, onChange?: (delta: 1 | -1) => void): Inflight {
  let count = 0;
  let waiters: Array<() => void> = [];
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
    admit(res) {
      if (count >= max) return false;
      count++;
      onChange?.(1);
      res.once('close', release);
      return true;
    },
    count: () => count,
    idle: () => (count === 0 ? Promise.resolve() : new Promise((resolve) => waiters.push(resolve))),
  };
}
