/**
 * What a failed-login flood may cost the STS. A wrong secret for a
 * `secretHash` client costs a full scrypt on the libuv thread pool, the
 * pool that also serves the rest of the process; 64 connections sending
 * wrong secrets pushed an honest exchange from 5 ms to 2.8 s (issue #16).
 *
 * - At most `maxConcurrentSecretChecks` scrypt checks run at once, with at
 *   most `maxQueuedSecretChecks` waiting; past that, 429 at once.
 * - Failed authentications are counted per client id and per peer address
 *   in a fixed window; past `maxFailuresPerClient` or `maxFailuresPerPeer`,
 *   further attempts get 429 with `Retry-After`, without any secret check.
 *
 * A client whose secret this process has already verified is recognised by
 * an HMAC compare (secret-hash.ts `known`) and never throttled, so an
 * attacker sending wrong secrets under an honest client's id cannot lock
 * that client out of a running STS. Counters are bounded in number: the
 * oldest are forgotten first.
 */
import { AuthThrottledError } from './errors.ts';

export interface AuthThrottleOptions {
  readonly maxConcurrentSecretChecks: number;
  readonly maxQueuedSecretChecks: number;
  readonly failureWindowSeconds: number;
  readonly maxFailuresPerClient: number;
  readonly maxFailuresPerPeer: number;
  /** Counters kept at most; default 10,000. */
  readonly maxTrackedKeys?: number;
  /** Milliseconds. */
  readonly now: () => number;
}

export interface AuthThrottle {
  /** Throws AuthThrottledError when this client or this peer has failed too often in the current window. */
  admit(clientId: string, peer: string): void;
  /** Runs one costly secret check within the concurrency bound; throws AuthThrottledError when the queue is full. */
  costly<T>(check: () => Promise<T>): Promise<T>;
  /** Counts one failed authentication against the client and the peer. */
  failed(clientId: string, peer: string): void;
}

interface Window {
  start: number;
  count: number;
}

export function createAuthThrottle(options: AuthThrottleOptions): AuthThrottle {
  const windowMs = options.failureWindowSeconds * 1000;
  const maxKeys = options.maxTrackedKeys ?? 10_000;
  const failures = new Map<string, Window>();
  let running = 0;
  const waiting: Array<() => void> = [];

  const count = (key: string): number => {
    const window = failures.get(key);
    if (window === undefined) return 0;
    if (options.now() - window.start >= windowMs) {
      failures.delete(key);
      return 0;
    }
    return window.count;
  };
  const retryAfter = (key: string): number => {
    const window = failures.get(key);
    return window === undefined ? 1 : Math.max(1, Math.ceil((window.start + windowMs - options.now()) / 1000));
  };
  const bump = (key: string): void => {
    const now = options.now();
    const window = failures.get(key);
    if (window !== undefined && now - window.start < windowMs) {
      window.count++;
      return;
    }
    failures.delete(key);
    if (failures.size >= maxKeys) {
      for (const [k, w] of failures) if (now - w.start >= windowMs) failures.delete(k);
      // Still full of live windows: forget the oldest (Map order is insertion order).
      while (failures.size >= maxKeys) failures.delete(failures.keys().next().value as string);
    }
    failures.set(key, { start: now, count: 1 });
  };
  const release = (): void => {
    running--;
    const next = waiting.shift();
    if (next !== undefined) {
      running++;
      next();
    }
  };

  return {
    admit(clientId, peer) {
      const clientKey = `c\n${clientId}`;
      const peerKey = `p\n${peer}`;
      if (count(clientKey) >= options.maxFailuresPerClient) {
        throw new AuthThrottledError(
          `expected at most ${options.maxFailuresPerClient} failed authentications per client in ${options.failureWindowSeconds} s, this client has had more`,
          { extensions: { retryAfter: retryAfter(clientKey) } },
        );
      }
      if (count(peerKey) >= options.maxFailuresPerPeer) {
        throw new AuthThrottledError(
          `expected at most ${options.maxFailuresPerPeer} failed authentications per peer in ${options.failureWindowSeconds} s, this peer has had more`,
          { extensions: { retryAfter: retryAfter(peerKey) } },
        );
      }
    },
    async costly(check) {
      if (running >= options.maxConcurrentSecretChecks) {
        if (waiting.length >= options.maxQueuedSecretChecks) {
          throw new AuthThrottledError(
            `expected at most ${options.maxConcurrentSecretChecks + options.maxQueuedSecretChecks} secret checks running or queued, the queue is full`,
            { extensions: { retryAfter: 1 } },
          );
        }
        await new Promise<void>((resolve) => waiting.push(resolve));
      } else {
        running++;
      }
      try {
        return await check();
      } finally {
        release();
      }
    },
    failed(clientId, peer) {
      bump(`c\n${clientId}`);
      bump(`p\n${peer}`);
    },
  };
}
