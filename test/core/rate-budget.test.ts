import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRateBudget } from '../../src/core/rate-budget.ts';

describe('rate budget', () => {
  it("allows one second's worth at once, then refills continuously from the clock", () => {
    let clock = 1_000_000;
    const budget = createRateBudget({ perSecond: 4, now: () => clock });
    assert.deepEqual(
      [1, 2, 3, 4, 5].map(() => budget.take()),
      [true, true, true, true, false],
    );
    assert.equal(budget.retryAfterSeconds(), 1);
    clock += 250;
    assert.equal(budget.take(), true);
    assert.equal(budget.take(), false);
    clock += 10_000;
    assert.equal(
      [1, 2, 3, 4, 5, 6].filter(() => budget.take()).length,
      4,
      "never more than one second's worth, however long it rested",
    );
  });

  it('says how long until a unit is back for slow rates, and refills nothing when the clock steps back', () => {
    let clock = 1_000_000;
    const budget = createRateBudget({ perSecond: 0.1, now: () => clock });
    assert.equal(budget.take(), true);
    assert.equal(budget.take(), false);
    assert.equal(budget.retryAfterSeconds(), 10);
    clock -= 60_000;
    assert.equal(budget.take(), false);
    assert.throws(() => createRateBudget({ perSecond: 0, now: () => clock }), RangeError);
  });
});
