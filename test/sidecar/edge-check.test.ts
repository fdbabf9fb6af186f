import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DecisionInput } from '../../src/policy/language/decision.ts';
import { checkSidecarEdge, type EdgeContext } from '../../src/sidecar/edge-check.ts';
import { createSidecarMetrics } from '../../src/sidecar/metrics.ts';
import { PolicyDeniedError } from '../../src/policy/language/errors.ts';
import { StepUpRequiredError } from '../../src/sidecar/errors.ts';
import { captureLogs, type LogCapture } from '../helpers/logs.ts';
import { callGraph, compileTestPolicy } from '../helpers/policy.ts';

const POLICY = compileTestPolicy(
  callGraph(`
gateway: { entrypoint: true }
orders:
  accepts:
    - { name: from-gateway, from: gateway, methods: [GET], paths: ["/orders/**"] }
payments:
  accepts:
    - { name: charge, from: orders, methods: [POST], paths: ["/charges"], acr: [mfa] }
    - { name: refunds, from: orders, methods: [POST], paths: ["/refunds"], mode: shadow, scopes: "refund" }
`),
);

function edgeContext(logs: LogCapture, overrides: Partial<EdgeContext> = {}): EdgeContext {
  return {
    direction: 'inbound',
    service: 'payments',
    subject: 'alice',
    subjectIssuer: 'https://idp.test',
    txn: 'txn-1',
    request: 'req-1',
    policyVersion: 7,
    logger: logs.logger,
    metrics: createSidecarMetrics(),
    ...overrides,
  };
}

const call = (path: string, overrides: Partial<DecisionInput> = {}): DecisionInput => ({
  chain: ['gateway', 'orders'],
  target: 'payments',
  method: 'POST',
  path,
  scopes: new Set(['shop']),
  acr: 'mfa',
  user: true,
  ...overrides,
});

function thrown(
  run: () => unknown,
): { code?: string; reason?: string; status?: number; extensions?: Record<string, unknown> } | undefined {
  try {
    run();
    return undefined;
  } catch (error) {
    return error as { code?: string; reason?: string; status?: number; extensions?: Record<string, unknown> };
  }
}

describe('sidecar edge check', () => {
  it('lets an allowed call through and writes one decision line that can be re-decided later', () => {
    const logs = captureLogs('payments');
    const context = edgeContext(logs);
    const decision = checkSidecarEdge(POLICY, call('/charges'), context);
    assert.equal(decision.allowed, true);
    assert.equal(logs.lines.length, 1);
    const line = logs.lines[0] as Record<string, unknown>;
    assert.deepEqual(
      {
        event: line.event,
        decision: line.decision,
        rule: line.rule,
        chain: line.chain,
        target: line.target,
        method: line.method,
        path: line.path,
        user: line.user,
        scopes: line.scopes,
        acr: line.acr,
        txn: line.txn,
        request: line.request,
        policyVersion: line.policyVersion,
      },
      {
        event: 'decision',
        decision: 'allow',
        rule: 'payments.accepts.charge',
        chain: ['gateway', 'orders'],
        target: 'payments',
        method: 'POST',
        path: '/charges',
        user: true,
        scopes: ['shop'],
        acr: 'mfa',
        txn: 'txn-1',
        request: 'req-1',
        policyVersion: 7,
      },
    );
    assert.match(
      context.metrics.render(),
      /baton_decisions_total\{rule="payments\.accepts\.charge",decision="allow"\} 1/,
    );
  });

  it('refuses a call no rule allows with 403 BATON_POLICY_DENIED naming the rule and cause', () => {
    const logs = captureLogs('payments');
    const error = thrown(() => checkSidecarEdge(POLICY, call('/charges', { method: 'DELETE' }), edgeContext(logs)));
    assert.equal(error?.code, PolicyDeniedError.code);
    assert.equal(error?.status, 403);
    assert.equal(error?.extensions?.cause, 'method');
    assert.equal(error?.reason, 'method');
    assert.equal(logs.lines[0]?.decision, 'deny');
    assert.equal(logs.lines[0]?.cause, 'method');
  });

  it('asks for step-up (401, RFC 9470 acr_values) when only the acr was short', () => {
    const logs = captureLogs('payments');
    const error = thrown(() => checkSidecarEdge(POLICY, call('/charges', { acr: undefined }), edgeContext(logs)));
    assert.equal(error?.code, StepUpRequiredError.code);
    assert.equal(error?.status, 401);
    assert.equal(error?.extensions?.acr_values, 'mfa');
    assert.equal(logs.lines[0]?.acr, null, 'a token without acr is logged as null, not left out');
  });

  it('lets a shadow-mode denial through, recorded as would_deny and counted by target and rule', () => {
    const logs = captureLogs('payments');
    const context = edgeContext(logs);
    const decision = checkSidecarEdge(POLICY, call('/refunds'), context);
    assert.equal(decision.allowed, false);
    assert.equal(logs.lines[0]?.decision, 'would_deny');
    assert.match(
      context.metrics.render(),
      /baton_shadow_denials_total\{target="payments",rule="payments\.accepts\.refunds"\} 1/,
    );
  });
});
