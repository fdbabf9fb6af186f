/**
 * A budget of actions per second (a token bucket): full at start, holding
 * at most one second's worth (at least one action), refilled continuously
 * from an injected clock. Pure arithmetic on the clock's value: no timer,
 * nothing to close.
 */

export interface RateBudget {
  /** Spends one unit; false when none is left. */
  take(): boolean;
  /** Whole seconds until a unit is back, at least 1: the `Retry-After` of a refusal. */
  retryAfterSeconds(): number;
}

export function createRateBudget(options: { readonly perSecond: number; readonly now: () => number }): RateBudget {
  const { perSecond, now } = options;
  if (!(perSecond > 0)) throw new RangeError(`expected a positive rate, got ${perSecond}`);
  // At least one unit of room, so a rate below one per second still allows an action now and then.
  const capacity = Math.max(1, perSecond);
  let units = capacity;
  let at = now();
  const refill = (): void => {
    const t = now();
    // A clock that steps back refills nothing rather than going negative.
    units = Math.min(capacity, units + (Math.max(0, t - at) * perSecond) / 1000);
    at = t;
  };
  return {
    take() {
      refill();
      if (units < 1) return false;
      units -= 1;
      return true;
    },
    retryAfterSeconds() {
      refill();
      return Math.max(1, Math.ceil((1 - units) / perSecond));
    },
  };
}
