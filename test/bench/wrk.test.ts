import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crossCheckRatio, parseWrk, wrkMissing } from '../../bench/lib/wrk.ts';

const OUTPUT = `Running 4s test @ http://127.0.0.1:8080/bench
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms  512.00us  10.00ms   90.00%
    Req/Sec    15.20k     1.10k   17.00k    80.00%
  60800 requests in 4.00s, 9.10MB read
Requests/sec:  15200.00
Transfer/sec:      2.28MB
`;

const compare = { numerator: 'baton', denominator: 'nginx', autocannonRatio: 0.5, tolerance: 0.15 };

describe('the wrk cross-check (#28)', () => {
  it('reads the request count and the rate from wrk’s summary', () => {
    assert.deepEqual(parseWrk(OUTPUT, 0, 'wrk …'), { requests: 60800, rps: 15200, errors: 0, command: 'wrk …' });
  });

  it('counts socket errors and non-2xx answers as errors', () => {
    const parsed = parseWrk(
      `${OUTPUT}  Socket errors: connect 1, read 2, write 0, timeout 3\n  Non-2xx or 3xx responses: 4\n`,
      0,
      'wrk',
    );
    assert.ok(!('error' in parsed));
    assert.equal(parsed.errors, 10);
  });

  it('answers an error, never a rate, when wrk failed', () => {
    assert.ok('error' in parseWrk('unable to connect to 127.0.0.1:1 Connection refused', 1, 'wrk'));
  });

  it('is met when wrk’s ratio is within the tolerance of autocannon’s', () => {
    assert.equal(
      crossCheckRatio({ rps: { baton: [5400], nginx: [10000] }, problems: [], command: 'wrk' }, compare).met,
      true,
    );
  });

  it('fails when the two load generators disagree by more than the tolerance', () => {
    assert.equal(
      crossCheckRatio({ rps: { baton: [3000], nginx: [10000] }, problems: [], command: 'wrk' }, compare).met,
      false,
    );
  });

  it('fails, naming the package to install, when wrk is missing: it never passes quietly', () => {
    const check = crossCheckRatio({ rps: {}, problems: [wrkMissing()], command: '' }, compare);
    assert.equal(check.met, false);
    assert.match(check.measured, /apt-get install -y wrk/);
  });

  it('fails when a path was never measured', () => {
    assert.equal(crossCheckRatio({ rps: { nginx: [10000] }, problems: [], command: '' }, compare).met, false);
  });
});
