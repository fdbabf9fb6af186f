import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type AuditLine, parseAuditRecord } from '../../src/telemetry/audit-event.ts';
import { reconstructTrail } from '../../src/telemetry/audit-trail.ts';
import { PolicyDeniedError } from '../../src/policy/language/errors.ts';

const T = '2026-01-01T00:00:00.000Z';
const TRACE = 'ab'.repeat(16);
const decision = (
  service: string,
  direction: string,
  chain: string[],
  target: string,
  extra: Record<string, unknown> = {},
) => ({
  time: T,
  service,
  event: 'decision',
  component: 'sidecar',
  direction,
  chain,
  target,
  method: 'POST',
  path: '/x',
  rule: `${target}.accepts.r`,
  decision: 'allow',
  txn: 'txn-1',
  trace_id: TRACE,
  ...extra,
});

/** Log records as the one parser reads them; a fixture it refuses fails here, not silently in the trail. */
function parsed(records: readonly Record<string, unknown>[]): AuditLine[] {
  return records.map((record) => {
    const line = parseAuditRecord(record);
    assert.ok(line !== undefined, `fixture is not an audit line: ${JSON.stringify(record)}`);
    return line;
  });
}

describe('audit trail reconstruction', () => {
  it('orders events logged in the same millisecond by their place in the chain', () => {
    const lines = parsed([
      decision('orders', 'inbound', ['gateway'], 'orders'),
      {
        time: T,
        service: 'baton-sts',
        event: 'token_issued',
        component: 'sts',
        grant: 'token-exchange',
        client: 'gateway',
        decision: 'allow',
        chain: ['gateway'],
        target: 'orders',
        rule: 'orders.accepts.r',
        txn: 'txn-1',
        policyVersion: 3,
        exp: 1,
        jti: 'j',
        status: 200,
      },
      decision('gateway', 'outbound', ['gateway'], 'orders'),
      decision('gateway', 'inbound', [], 'gateway'),
    ]);
    const trail = reconstructTrail(lines, { txn: 'txn-1' });
    assert.deepEqual(
      trail.events.map((e) => `${e.service}/${e.direction ?? e.component}`),
      ['gateway/inbound', 'gateway/outbound', 'baton-sts/sts', 'orders/inbound'],
    );
    assert.deepEqual(trail.hops, ['gateway', 'orders']);
    assert.equal(trail.events[2]?.status, 200);
    assert.equal(trail.events[2]?.client, 'gateway');
  });

  it('joins a line that carries only the trace id to the txn it belongs to', () => {
    const lines = parsed([
      decision('gateway', 'outbound', ['gateway'], 'orders'),
      {
        time: '2026-01-01T00:00:00.001Z',
        service: 'baton-sts',
        event: 'token_refused',
        component: 'sts',
        code: PolicyDeniedError.code,
        reason: 'no_edge',
        error: 'invalid_target',
        status: 400,
        path: '/token',
        trace_id: TRACE,
      },
      decision('gateway', 'inbound', [], 'gateway', { txn: 'other', trace_id: 'cd'.repeat(16) }),
    ]);
    const trail = reconstructTrail(lines, { txn: 'txn-1' });
    assert.deepEqual(trail.traceIds, [TRACE]);
    assert.equal(trail.events.length, 2);
    assert.equal(trail.events[1]?.component, 'sts');
    assert.equal(trail.events[1]?.cause, 'invalid_target');
    assert.equal(trail.events[1]?.status, 400);
  });

  it('names the first enforced denial, with the status its line recorded', () => {
    const lines = parsed([
      decision('gateway', 'outbound', ['gateway'], 'payments', {
        decision: 'deny',
        cause: 'acr',
        rule: 'payments.accepts',
        status: 401,
      }),
    ]);
    const trail = reconstructTrail(lines, { traceId: TRACE.toUpperCase() });
    assert.equal(trail.deniedAt?.rule, 'payments.accepts');
    assert.equal(trail.deniedAt?.status, 401);
  });

  it('invents no status for a denial whose line has none (written before status was logged)', () => {
    const trail = reconstructTrail(
      parsed([
        decision('gateway', 'outbound', ['gateway'], 'payments', {
          decision: 'deny',
          cause: 'no_edge',
          component: undefined,
        }),
      ]),
      { txn: 'txn-1' },
    );
    assert.equal(trail.deniedAt?.component, 'sidecar');
    assert.equal(trail.deniedAt?.status, undefined);
  });

  it('finds nothing for an unknown txn', () => {
    assert.equal(
      reconstructTrail(parsed([decision('gateway', 'inbound', [], 'gateway')]), { txn: 'nope' }).events.length,
      0,
    );
  });
});
