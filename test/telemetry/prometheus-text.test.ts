import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  formatLabels,
  histogram,
  labelledSeries,
  nestedCounter,
  renderFamily,
  renderHistogramFamily,
} from '../../src/telemetry/prometheus-text.ts';

describe('prometheus text registry', () => {
  it('escapes backslash, double quote and line feed in label values', () => {
    assert.equal(formatLabels({ rule: 'a\\b"c\nd' }), '{rule="a\\\\b\\"c\\nd"}');
    assert.equal(formatLabels({}), '');
  });

  it('renders histogram buckets cumulatively, with +Inf, sum and count', () => {
    const h = histogram([0.1, 1], { grant: 'token_exchange' });
    for (const seconds of [0.05, 0.5, 0.7, 3]) h.observe(seconds);
    const lines: string[] = [];
    renderHistogramFamily(lines, 'd_seconds', 'help', [h]);
    assert.deepEqual(lines, [
      '# HELP d_seconds help',
      '# TYPE d_seconds histogram',
      'd_seconds_bucket{grant="token_exchange",le="0.1"} 1',
      'd_seconds_bucket{grant="token_exchange",le="1"} 3',
      'd_seconds_bucket{grant="token_exchange",le="+Inf"} 4',
      'd_seconds_sum{grant="token_exchange"} 4.25',
      'd_seconds_count{grant="token_exchange"} 4',
    ]);
  });

  it('keeps one series per label value, and per pair of values', () => {
    const faults = labelledSeries('fault');
    faults.add('auth');
    faults.add('auth');
    faults.of('noperm').value += 3;
    const decisions = nestedCounter('rule', 'decision');
    decisions.add('r1', 'allow');
    decisions.add('r1', 'deny');
    decisions.add('r1', 'allow');
    const lines: string[] = [];
    renderFamily(lines, 'f_total', 'counter', 'faults', faults.series());
    renderFamily(lines, 'd_total', 'counter', 'decisions', decisions.series());
    assert.deepEqual(lines, [
      '# HELP f_total faults',
      '# TYPE f_total counter',
      'f_total{fault="auth"} 2',
      'f_total{fault="noperm"} 3',
      '# HELP d_total decisions',
      '# TYPE d_total counter',
      'd_total{rule="r1",decision="allow"} 2',
      'd_total{rule="r1",decision="deny"} 1',
    ]);
  });
});
