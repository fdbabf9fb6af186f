import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AuditDecision } from '../../src/policy/tooling/audit-log.ts';
import { compilePolicy } from '../../src/policy/language/compile.ts';
import { renderDot } from '../../src/policy/tooling/graph-render.ts';
import type { CallGraphPolicy } from '../../src/policy/language/model.ts';
import {
  buildObservedReport,
  callsFromDecisions,
  compareWithPolicy,
  comparisonRenderOptions,
  observeEdges,
} from '../../src/policy/tooling/observed.ts';
import { formatObservedReport } from '../../src/cli/policy-observed.ts';
import { parsePolicy } from '../../src/policy/language/parse.ts';

function decision(fields: Partial<AuditDecision> & Pick<AuditDecision, 'chain' | 'target'>): AuditDecision {
  return {
    time: 1_000,
    service: fields.direction === 'outbound' ? (fields.chain[fields.chain.length - 1] ?? fields.target) : fields.target,
    direction: 'inbound',
    method: 'POST',
    path: '/',
    rule: 'r',
    decision: 'allow',
    cause: undefined,
    txn: 't',
    user: true,
    scopes: [],
    acr: null,
    subjectIssuer: undefined,
    ...fields,
    event: 'decision',
    component: 'sidecar',
  };
}

/** Both sidecars' lines for one call: outbound at the caller, inbound at the callee. */
function bothSides(fields: Partial<AuditDecision> & Pick<AuditDecision, 'chain' | 'target'>): AuditDecision[] {
  return [decision({ ...fields, direction: 'outbound' }), decision({ ...fields, direction: 'inbound' })];
}

function policyOf(yaml: string): CallGraphPolicy {
  const { policy, problems } = parsePolicy(yaml, 'p.yaml');
  assert.ok(policy, JSON.stringify(problems));
  return policy;
}

const SHOP = policyOf(`
apiVersion: baton.dev/v1alpha1
kind: CallGraph
metadata: { name: shop }
spec:
  services:
    gateway: { entrypoint: true }
    orders:
      accepts:
        - { name: from-gateway, from: gateway, methods: [POST], paths: [/orders] }
        - { name: reconcile, from: billing-job, methods: [GET], paths: ["/orders/**"], user: none }
    payments:
      accepts:
        - { name: charge, from: orders, methods: [POST], paths: [/charges], scopes: "payments:charge and fido", mode: shadow }
    billing-job: {}
`);

const TRAFFIC: AuditDecision[] = [
  decision({ chain: [], target: 'gateway', path: '/checkout', rule: 'gateway.entrypoint' }),
  ...bothSides({ chain: ['gateway'], target: 'orders', path: '/orders', rule: 'orders.accepts.from-gateway' }),
  ...bothSides({
    chain: ['gateway'],
    target: 'orders',
    path: '/orders',
    rule: 'orders.accepts.from-gateway',
    txn: 't2',
  }),
  ...bothSides({
    chain: ['gateway', 'orders'],
    target: 'payments',
    path: '/charges',
    rule: 'payments.accepts.charge',
    decision: 'would_deny',
    cause: 'scope',
    scopes: ['payments:charge'],
  }),
  decision({
    chain: ['gateway'],
    target: 'payments',
    path: '/charges',
    direction: 'outbound',
    rule: 'payments.accepts',
    decision: 'deny',
    cause: 'no_edge',
  }),
];

describe('observed call graph', () => {
  it('counts a call decided at both the caller and the callee once', () => {
    const calls = callsFromDecisions(bothSides({ chain: ['gateway'], target: 'orders' }));
    assert.equal(calls.length, 1);
    assert.equal(calls[0]?.from, 'gateway');
  });

  it('counts the calls denied at the caller that never reached the callee on top of the ones that did', () => {
    const allowed = bothSides({ chain: ['gateway'], target: 'orders' });
    const denied = decision({
      chain: ['gateway'],
      target: 'orders',
      direction: 'outbound',
      decision: 'deny',
      cause: 'scope',
    });
    const calls = callsFromDecisions([...allowed, ...allowed, denied]);
    assert.deepEqual(calls.map((c) => c.decision).sort(), ['allow', 'allow', 'deny']);
  });

  it('counts calls from one side alone when only that sidecar’s logs are given', () => {
    const outboundOnly = [1, 2, 3].map(() => decision({ chain: ['gateway'], target: 'orders', direction: 'outbound' }));
    assert.equal(callsFromDecisions(outboundOnly).length, 3);
  });

  it('summarises each edge: calls, outcomes, routes, chains of origin', () => {
    const edges = observeEdges(callsFromDecisions(TRAFFIC));
    assert.deepEqual(
      edges.map((e) => [e.from, e.to, e.calls]),
      [
        ['external', 'gateway', 1],
        ['gateway', 'orders', 2],
        ['gateway', 'payments', 1],
        ['orders', 'payments', 1],
      ],
    );
    const charge = edges.find((e) => e.from === 'orders');
    assert.deepEqual(charge?.outcomes, { allow: 0, deny: 0, would_deny: 1 });
    assert.deepEqual(charge?.routes, [{ method: 'POST', path: '/charges', calls: 1 }]);
    assert.deepEqual(charge?.chains, [{ chain: ['gateway', 'orders'], calls: 1 }]);
    assert.deepEqual(charge?.origins, ['gateway']);
  });

  it('reports edges used but not declared, declared edges never used, and rules that only shadow-denied', () => {
    const comparison = compareWithPolicy(callsFromDecisions(TRAFFIC), SHOP, compilePolicy(SHOP));
    assert.deepEqual(
      comparison.undeclared.map((e) => [e.from, e.to, e.underPolicy.deny]),
      [['gateway', 'payments', 1]],
    );
    assert.deepEqual(
      comparison.unusedEdges.map((e) => [e.from, e.to, e.rules]),
      [['billing-job', 'orders', ['orders.accepts.reconcile']]],
    );
    assert.deepEqual(
      comparison.shadowOnly.map((u) => [u.rule, u.outcomes.would_deny]),
      [['payments.accepts.charge', 1]],
    );
    // An entrypoint without `from: external` rules accepts external tokens: that edge is declared.
    assert.ok(!comparison.undeclared.some((e) => e.from === 'external'));
  });

  it('decides the calls again under the policy being reviewed, not the one that was running', () => {
    const stricter = policyOf(`
apiVersion: baton.dev/v1alpha1
kind: CallGraph
metadata: { name: stricter }
spec:
  services:
    gateway: { entrypoint: true }
    orders:
      accepts:
        - { name: from-gateway, from: gateway, methods: [POST], paths: [/orders], scopes: "orders:write" }
`);
    const comparison = compareWithPolicy(callsFromDecisions(TRAFFIC), stricter, compilePolicy(stricter));
    const rule = comparison.rules.find((u) => u.rule === 'orders.accepts.from-gateway');
    assert.deepEqual(rule?.outcomes, { allow: 0, deny: 2, would_deny: 0 });
    assert.deepEqual(
      comparison.unusedRules.map((u) => u.rule),
      ['orders.accepts.from-gateway'],
    );
  });

  describe('an acr-restricted rule', () => {
    const STEP_UP = policyOf(`
apiVersion: baton.dev/v1alpha1
kind: CallGraph
metadata: { name: step-up }
spec:
  services:
    gateway: { entrypoint: true }
    payments:
      accepts:
        - { name: charge, from: gateway, methods: [POST], paths: [/charges], acr: [urn:baton:acr:mfa] }
`);
    const charge = (fields: Partial<AuditDecision>) =>
      bothSides({
        chain: ['gateway'],
        target: 'payments',
        path: '/charges',
        rule: 'payments.accepts.charge',
        ...fields,
      });
    const outcomes = (decisions: AuditDecision[]) =>
      compareWithPolicy(callsFromDecisions(decisions), STEP_UP, compilePolicy(STEP_UP)).rules.find(
        (u) => u.rule === 'payments.accepts.charge',
      )?.outcomes;

    it('counts as used when the lines record the acr the calls were made with', () => {
      assert.deepEqual(outcomes(charge({ acr: 'urn:baton:acr:mfa' })), { allow: 1, deny: 0, would_deny: 0 });
    });

    it('is decided again as a denial for a call whose token had no acr (acr: null)', () => {
      assert.deepEqual(outcomes(charge({ acr: null, decision: 'deny', cause: 'acr' })), {
        allow: 0,
        deny: 1,
        would_deny: 0,
      });
    });

    it('keeps the logged decision for lines written before acr was recorded', () => {
      assert.deepEqual(outcomes(charge({ acr: undefined })), { allow: 1, deny: 0, would_deny: 0 });
    });
  });

  it('prints the edges and every comparison section as text', () => {
    const calls = callsFromDecisions(TRAFFIC);
    const text = formatObservedReport(buildObservedReport(calls, compareWithPolicy(calls, SHOP, compilePolicy(SHOP))));
    assert.match(text, /^observed 5 calls on 4 edges/);
    assert.match(text, /orders → payments {2}1× \(would_deny 1\)/);
    assert.match(text, /chains: gateway→orders 1×/);
    assert.match(text, /used but not declared[^\n]*\n {4}gateway → payments {2}1× \(deny 1\)/);
    assert.match(text, /never used[^\n]*\n {4}billing-job → orders {2}\(orders\.accepts\.reconcile\)/);
    assert.match(text, /only shadow-denied[^\n]*\n {4}payments\.accepts\.charge/);
  });

  it('draws used, unused, shadow-only and undeclared edges differently', () => {
    const calls = callsFromDecisions(TRAFFIC);
    const dot = renderDot(SHOP, comparisonRenderOptions(compareWithPolicy(calls, SHOP, compilePolicy(SHOP))));
    assert.match(dot, /"gateway" -> "orders" \[label="POST \/orders\\nused 2×", style="bold", color="#2e7d32"/);
    assert.match(dot, /"billing-job" -> "orders" \[[^\]]*never used", style="dashed", color="#9e9e9e"/);
    assert.match(dot, /"orders" -> "payments" \[[^\]]*would deny 1×", style="dashed", color="#ef6c00"/);
    assert.match(
      dot,
      /"gateway" -> "payments" \[label="POST \/charges\\nUNDECLARED 1× \(deny 1\)", style="bold", color="#c62828"/,
    );
  });
});
