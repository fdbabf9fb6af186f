/**
 * Stops calling a failing STS so requests fail fast instead of queueing on
 * timeouts: after `failureThreshold` consecutive failures the circuit opens
 * for `openMs`, then lets a single probe through (half-open); the probe's
 * outcome closes it or opens it again.
 */
export type BreakerState = 'closed' | 'open' | 'half-open';

export interface CircuitBreakerOptions {
  readonly failureThreshold: number;
  readonly openMs: number;
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

  const state = (): BreakerState => {
    if (openedAt === undefined) return 'closed';
    return options.now() - openedAt >= options.openMs ? 'half-open' : 'open';
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
    },
    failure() {
      failures++;
      if (probing || failures >= options.failureThreshold) openedAt = options.now();
      probing = false;
    },
    state,
  };
}
