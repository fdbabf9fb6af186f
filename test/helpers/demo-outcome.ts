/**
 * What the demo's two scenarios must show, wherever they ran from (the
 * sources through `baton demo --json`, or the bundle through startMesh):
 * the allowed chain end to end, one txn and every hop's decision on the
 * audit trail; the refused call stopped at the gateway's outbound port.
 */
import assert from 'node:assert/strict';
import type { ScenarioResult } from '../../src/demo/scenario.ts';
import { PolicyDeniedError } from '../../src/policy/language/errors.ts';

/** `charge`: how orders charged payments, over gRPC (the demo's default, rule `charge`) or HTTP (`charge-http`). */
export function assertDemoOutcome(
  results: readonly ScenarioResult[],
  charge: 'grpc' | 'http' = 'grpc',
): { allowed: ScenarioResult; denied: ScenarioResult } {
  const [allowed, denied] = results;
  assert.ok(allowed && denied);

  assert.equal(allowed.passed, true);
  assert.deepEqual(
    allowed.hops.map((h) => [h.service, h.caller, h.chain ?? '']),
    [
      ['gateway', 'external', ''],
      ['orders', 'gateway', 'gateway'],
      ['payments', 'orders', 'gateway,orders'],
    ],
  );
  assert.ok(allowed.hops.every((h) => h.subject === 'alice' && !h.sawBearerToken));
  // One txn from the entry hop to the last, and every hop's decision on the audit trail.
  assert.equal(new Set(allowed.hops.map((h) => h.txn)).size, 1);
  const trail = (direction: string) =>
    allowed.decisions
      .filter((d) => d.direction === direction)
      .map((d) => [d.service, d.decision])
      .sort();
  assert.deepEqual(trail('inbound'), [
    ['gateway', 'allow'],
    ['orders', 'allow'],
    ['payments', 'allow'],
  ]);
  assert.deepEqual(trail('outbound'), [
    ['gateway', 'allow'],
    ['orders', 'allow'],
  ]);
  assert.ok(
    allowed.decisions.some(
      (d) =>
        d.service === 'payments' &&
        d.direction === 'inbound' &&
        d.rule === (charge === 'grpc' ? 'payments.accepts.charge' : 'payments.accepts.charge-http'),
    ),
  );
  // mTLS, the default: each mesh hop saw its caller's SPIFFE ID, and a token bound to that caller's certificate.
  assert.equal(allowed.transport, 'mtls');
  const meshHops = allowed.decisions
    .filter((d) => d.direction === 'inbound' && d.service !== 'gateway')
    .map((d) => [d.service, d.peer, d.bound])
    .sort();
  assert.deepEqual(meshHops, [
    ['orders', 'spiffe://baton.demo/ns/demo/sa/gateway', true],
    ['payments', 'spiffe://baton.demo/ns/demo/sa/orders', true],
  ]);

  assert.equal(denied.passed, true);
  assert.equal(denied.status, 403);
  assert.equal(denied.problem?.code, PolicyDeniedError.code);
  assert.ok(
    denied.decisions.some(
      (d) => d.service === 'gateway' && d.direction === 'outbound' && d.decision === 'deny' && d.cause === 'no_edge',
    ),
  );
  return { allowed, denied };
}
