import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type AddedP99Input,
  addedP99Check,
  addedP99Verdict,
  DIRECT_DWARFS,
  MIN_EVEN_SHARE,
} from '../../bench/lib/added-latency.ts';

const target = 'added p99 at 1,000 req/s ≤ 1.5× the nginx pair’s added p99';

function input(
  direct: number,
  baton: number,
  nginx: number,
  evenShare: { direct?: number; baton?: number; nginx?: number } = {},
): AddedP99Input {
  return {
    target,
    direct: { p99Ms: direct, evenShare: evenShare.direct ?? 0.95 },
    candidate: { name: 'baton pair', p99Ms: baton, evenShare: evenShare.baton ?? 0.95 },
    baseline: { name: 'nginx pair', p99Ms: nginx, evenShare: evenShare.nginx ?? 0.95 },
    factor: 1.5,
  };
}

describe('the added-p99 check (#28)', () => {
  it('is met when the pair adds at most 1.5× what the baseline adds', () => {
    assert.equal(addedP99Verdict(input(1, 4, 3)), 'met');
    assert.equal(addedP99Check(input(1, 4, 3)).met, true);
  });

  it('is not met when the pair adds more than 1.5× what the baseline adds', () => {
    const check = addedP99Check(input(1, 5, 3));
    assert.equal(addedP99Verdict(input(1, 5, 3)), 'not met');
    assert.equal(check.met, false);
    assert.notEqual(check.notMeasured, true);
  });

  it('is not measured, never met, when the direct path’s p99 is above both pairs’ (the 92.5 ms stall)', () => {
    const check = addedP99Check(input(92.5, 17.7, 11.0));
    assert.equal(addedP99Verdict(input(92.5, 17.7, 11.0)), 'not measured');
    assert.equal(check.met, false);
    assert.equal(check.notMeasured, true);
    assert.match(check.measured, /^not measured: /);
  });

  it('is not measured when only the baseline measured no slower than direct', () => {
    assert.equal(addedP99Verdict(input(11.029, 30, 10.417)), 'not measured');
  });

  it('is not measured when the load generator fell behind its schedule in any of the three runs', () => {
    for (const late of [{ direct: 0.64 }, { baton: 0.63 }, { nginx: MIN_EVEN_SHARE - 0.01 }]) {
      const check = addedP99Check(input(1, 1.2, 3, late));
      assert.equal(check.met, false, JSON.stringify(late));
      assert.equal(check.notMeasured, true, JSON.stringify(late));
    }
  });

  it('is measured with every run exactly at the schedule threshold', () => {
    const at = { direct: MIN_EVEN_SHARE, baton: MIN_EVEN_SHARE, nginx: MIN_EVEN_SHARE };
    assert.equal(addedP99Verdict(input(1, 4, 3, at)), 'met');
  });

  it('is not measured when the direct path’s p99 dwarfs the baseline’s added p99', () => {
    // nginx adds 1 ms on top of a 6 ms direct tail: the difference is below the noise.
    assert.equal(addedP99Verdict(input(DIRECT_DWARFS + 1, DIRECT_DWARFS + 1.5, DIRECT_DWARFS + 2)), 'not measured');
    assert.equal(addedP99Verdict(input(DIRECT_DWARFS, DIRECT_DWARFS + 1.5, DIRECT_DWARFS + 1)), 'met');
  });
});
