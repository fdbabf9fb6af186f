import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createCircuitBreaker } from '../../../src/sidecar/exchange/circuit-breaker.ts';

describe('circuit breaker around the STS', () => {
  function breakerAt(clock: { t: number }) {
    return createCircuitBreaker({ failureThreshold: 3, openMs: 1_000, maxOpenMs: 8_000, now: () => clock.t });
  }

  it('opens after the threshold of consecutive failures and lets one probe through once the open period is over', () => {
    const clock = { t: 0 };
    const breaker = breakerAt(clock);
    for (let i = 0; i < 3; i++) breaker.failure();
    assert.equal(breaker.tryAcquire(), false);
    clock.t = 1_000;
    assert.equal(breaker.tryAcquire(), true);
    assert.equal(breaker.tryAcquire(), false, 'only one probe while half-open');
    breaker.success();
    assert.equal(breaker.state(), 'closed');
  });

  it('doubles the open period after each failed probe, up to the maximum, and starts short again after a success', () => {
    const clock = { t: 0 };
    const breaker = breakerAt(clock);
    for (let i = 0; i < 3; i++) breaker.failure();
    const openPeriods: number[] = [];
    for (let round = 0; round < 5; round++) {
      const openedAt = clock.t;
      while (!breaker.tryAcquire()) clock.t += 100;
      openPeriods.push(clock.t - openedAt);
      breaker.failure();
    }
    assert.deepEqual(openPeriods, [1_000, 2_000, 4_000, 8_000, 8_000]);
    while (!breaker.tryAcquire()) clock.t += 100;
    breaker.success();
    for (let i = 0; i < 3; i++) breaker.failure();
    const openedAt = clock.t;
    while (!breaker.tryAcquire()) clock.t += 100;
    assert.equal(clock.t - openedAt, 1_000);
  });

  it('does not extend the open period when calls already in flight fail after it opened', () => {
    const clock = { t: 0 };
    const breaker = breakerAt(clock);
    for (let i = 0; i < 3; i++) breaker.failure();
    clock.t = 900;
    breaker.failure();
    clock.t = 1_000;
    assert.equal(breaker.tryAcquire(), true);
  });
});
