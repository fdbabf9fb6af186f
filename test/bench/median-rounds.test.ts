/**
 * bench/lib/report.ts `medianRounds`: how every scenario folds its rounds
 * into the one row it reports.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { medianRounds } from '../../bench/lib/report.ts';

describe('medianRounds', () => {
  it('takes the median of each number, of each per-proxy list element by element, and sums errors', () => {
    const rounds = [
      { rps: 100, errors: 1, cpu: [0.3, 0.1] },
      { rps: 300, errors: 0, cpu: [0.1, 0.5] },
      { rps: 200, errors: 2, cpu: [0.2, 0.3] },
    ];
    assert.deepEqual(medianRounds(rounds), { rps: 200, errors: 3, cpu: [0.2, 0.3] });
  });

  it('averages the middle two of an even number of rounds', () => {
    assert.deepEqual(
      medianRounds([
        { rps: 100, errors: 0, cpu: [1] },
        { rps: 200, errors: 0, cpu: [3] },
      ]),
      { rps: 150, errors: 0, cpu: [2] },
    );
  });
});
