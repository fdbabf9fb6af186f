import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runBaton } from '../helpers/process.ts';

interface Scenario {
  name: string;
  passed: boolean;
  status: number;
  hops: Array<{ service: string; subject?: string; caller?: string; chain?: string; txn?: string; sawBearerToken: boolean }>;
  decisions: Array<{ service: string; direction: string; rule?: string; decision?: string; cause?: string }>;
  problem?: { code?: string; rule?: string };
}

describe('baton demo (what npm start runs)', { timeout: 90_000 }, () => {
  it('drives an allowed chain through three sidecars and a refused one, as separate processes', async () => {
    const { code, stdout, stderr } = await runBaton(['demo', '--json']);
    assert.equal(code, 0, stderr.slice(-3000));
    const [allowed, denied] = JSON.parse(stdout) as Scenario[];
    assert.ok(allowed && denied);

    assert.equal(allowed.passed, true);
    assert.deepEqual(allowed.hops.map((h) => [h.service, h.caller, h.chain ?? '']), [
      ['gateway', 'external', ''],
      ['orders', 'gateway', 'gateway'],
      ['payments', 'orders', 'gateway,orders'],
    ]);
    assert.ok(allowed.hops.every((h) => h.subject === 'alice' && !h.sawBearerToken));
    // One txn from the entry hop to the last, and every hop's decision on the audit trail.
    assert.equal(new Set(allowed.hops.map((h) => h.txn)).size, 1);
    const trail = (direction: string) => allowed.decisions.filter((d) => d.direction === direction).map((d) => [d.service, d.decision]).sort();
    assert.deepEqual(trail('inbound'), [['gateway', 'allow'], ['orders', 'allow'], ['payments', 'allow']]);
    assert.deepEqual(trail('outbound'), [['gateway', 'allow'], ['orders', 'allow']]);
    assert.ok(allowed.decisions.some((d) => d.service === 'payments' && d.direction === 'inbound' && d.rule === 'payments.accepts.charge'));

    assert.equal(denied.passed, true);
    assert.equal(denied.status, 403);
    assert.equal(denied.problem?.code, 'BATON_POLICY_DENIED');
    assert.ok(denied.decisions.some((d) => d.service === 'gateway' && d.direction === 'outbound' && d.decision === 'deny' && d.cause === 'no_edge'));
  });

  it('prints a readable report without any token in it', async () => {
    const { code, stdout } = await runBaton(['demo']);
    assert.equal(code, 0);
    assert.match(stdout, /gateway → orders → payments/);
    assert.match(stdout, /✔ allowed end to end/);
    assert.match(stdout, /✔ refused by the policy/);
    assert.doesNotMatch(stdout, /eyJ|Bearer /);
  });
});
