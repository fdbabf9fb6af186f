import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { reconstructTrail } from '../../src/telemetry/audit-trail.ts';
import { StsPolicyDeniedError } from '../../src/sts/errors.ts';

const T = '2026-01-01T00:00:00.000Z';
const TRACE = 'ab'.repeat(16);
const decision = (service: string, direction: string, chain: string[], target: string, extra: Record<string, unknown> = {}) => ({
  time: T, service, event: 'decision', direction, chain, target, method: 'POST', path: '/x', rule: `${target}.accepts.r`, decision: 'allow', txn: 'txn-1', trace_id: TRACE, ...extra,
});

describe('audit trail reconstruction', () => {
  it('orders events logged in the same millisecond by their place in the chain', () => {
    const lines = [
      decision('orders', 'inbound', ['gateway'], 'orders'),
      { time: T, service: 'baton-sts', grant: 'token-exchange', event: 'allow', chain: ['gateway'], target: 'orders', rule: 'orders.accepts.r', txn: 'txn-1' },
      decision('gateway', 'outbound', ['gateway'], 'orders'),
      decision('gateway', 'inbound', [], 'gateway'),
    ];
    const trail = reconstructTrail(lines, { txn: 'txn-1' });
    assert.deepEqual(trail.events.map((e) => `${e.service}/${e.direction}`), ['gateway/inbound', 'gateway/outbound', 'baton-sts/sts', 'orders/inbound']);
    assert.deepEqual(trail.hops, ['gateway', 'orders']);
  });

  it('joins a line that carries only the trace id to the txn it belongs to', () => {
    const lines = [
      decision('gateway', 'outbound', ['gateway'], 'orders'),
      { time: '2026-01-01T00:00:00.001Z', service: 'baton-sts', event: 'refused', code: StsPolicyDeniedError.code, oauthError: 'invalid_target', status: 400, trace_id: TRACE },
      decision('gateway', 'inbound', [], 'gateway', { txn: 'other', trace_id: 'cd'.repeat(16) }),
    ];
    const trail = reconstructTrail(lines, { txn: 'txn-1' });
    assert.deepEqual(trail.traceIds, [TRACE]);
    assert.equal(trail.events.length, 2);
    assert.equal(trail.events[1]?.cause, 'invalid_target');
    assert.equal(trail.events[1]?.status, 400);
  });

  it('names the first enforced denial, with the status it answered', () => {
    const lines = [decision('gateway', 'outbound', ['gateway'], 'payments', { decision: 'deny', cause: 'no_edge', rule: 'payments.accepts' })];
    const trail = reconstructTrail(lines, { traceId: TRACE.toUpperCase() });
    assert.equal(trail.deniedAt?.rule, 'payments.accepts');
    assert.equal(trail.deniedAt?.status, 403);
  });

  it('finds nothing for an unknown txn', () => {
    assert.equal(reconstructTrail([decision('gateway', 'inbound', [], 'gateway')], { txn: 'nope' }).events.length, 0);
  });
});
