import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { resultsDir } from '../../bench/lib/report.ts';

const COMMITTED = fileURLToPath(new URL('../../bench/results/', import.meta.url));

describe('where benchmark results are written', () => {
  it('a full run writes the committed results', () => {
    assert.equal(resultsDir({}), COMMITTED);
  });

  it('a BENCH_QUICK=1 run never writes over them: its numbers mean nothing', () => {
    const quick = resultsDir({ BENCH_QUICK: '1' });
    assert.notEqual(quick, COMMITTED);
    assert.equal(quick, join(COMMITTED, 'quick/'));
  });

  it('BENCH_RESULTS_DIR wins over both', () => {
    assert.equal(resultsDir({ BENCH_QUICK: '1', BENCH_RESULTS_DIR: '/tmp/x' }), '/tmp/x');
  });
});
