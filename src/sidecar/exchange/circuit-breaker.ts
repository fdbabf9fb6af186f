/**
 * Stops calling a failing STS so requests fail fast instead of queueing on
 * timeouts: after `failureThreshold` consecutive failures the circuit opens
 * for `openMs`, then lets a single probe through (half-open); the probe's
 * outcome closes it or opens it again, each failed probe doubling the open
 * period up to `maxOpenMs`. A short first period follows a restarting STS
 * closely; the backoff keeps a long outage from being hammered.
 */
export type BreakerState = 'closed' | 'open' | 'half-open';

export interface CircuitBreakerOptions {
  readonly failureThreshold: number;
  /** The first open period. */
  readonly openMs: number;
  /** The longest open period after repeated failed probes. */
  readonly maxOpenMs?: number;
  readonly now: () => number;
}

export interface CircuitBreaker {
  /** True when a call may go out now; in half-open, true for exactly one caller. */
  tryAcquire(): boolean;
  success(): void;
  failure(): void;
  state(): BreakerState;
}

export function createCircuitBreaker(options: CircuitBreakerOptions): CircuitBreaker {
  let failures = 0;
  let openedAt: number | undefined;
  let probing = false;
  let openFor = options.openMs;
  const maxOpenMs = Math.max(options.maxOpenMs ?? options.openMs, options.openMs);

  const state = (): BreakerState => {
    if (openedAt === undefined) return 'closed';
    return options.now() - openedAt >= openFor ? 'half-open' : 'open';
  };

  return {
    tryAcquire() {
      const current = state();
      if (current === 'closed') return true;
      if (current === 'open' || probing) return false;
      probing = true;
      return true;
    },
    success() {
      failures = 0;
      openedAt = undefined;
      probing = false;
      openFor = options.openMs;
    },
    failure() {
      failures++;
      if (probing) {
        openFor = Math.min(openFor * 2, maxOpenMs);
        openedAt = options.now();
      } else if (failures >= options.failureThreshold && openedAt === undefined) {
        openedAt = options.now();
      }
      probing = false;
    },
    state,
  };
}
