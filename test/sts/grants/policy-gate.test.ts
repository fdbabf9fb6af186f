import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DecisionInput } from '../../../src/policy/language/decision.ts';
import { currentPolicy, depthCap, gateTokenRequest } from '../../../src/sts/grants/policy-gate.ts';
import { NotReadyError } from '../../../src/core/errors.ts';
import { PolicyDeniedError } from '../../../src/policy/language/errors.ts';
import { InvalidScopeError, toOAuthError, tokenEndpointStatus } from '../../../src/sts/errors.ts';
import type { HttpError } from '../../../src/core/errors.ts';
import type { StsGrantAudit } from '../../../src/telemetry/audit-event.ts';
import { captureLogs } from '../../helpers/logs.ts';
import { callGraph, compileTestPolicy } from '../../helpers/policy.ts';

const POLICY = compileTestPolicy(
  callGraph(
    `
gateway: { entrypoint: true }
orders:
  accepts:
    - { name: from-gateway, from: gateway, scopes: "shop" }
payments:
  accepts:
    - { name: charge, from: orders, origins: [gateway] }
    - { name: refunds, from: billing, mode: shadow, scopes: "refund" }
billing:
  accepts:
    - { name: from-gateway, from: gateway }
`,
    { maxDepth: 3 },
  ),
);

const edge = (chain: string[], target: string, overrides: Partial<DecisionInput> = {}): DecisionInput => ({
  chain,
  target,
  scopes: new Set(['shop']),
  user: true,
  subjectIssuer: 'https://idp.test',
  ...overrides,
});
const AUDIT: StsGrantAudit = {
  grant: 'token-exchange',
  txn: 'txn-1',
  client: 'orders',
  target: 'payments',
  chain: ['gateway', 'orders'],
  policyVersion: 7,
};

/** The error code a gate call throws, or undefined when it lets the edge through. */
function refusalCode(run: () => unknown): string | undefined {
  try {
    run();
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code;
  }
}

/** What the token endpoint answers the refusal with: `status error code reason`. */
function answered(run: () => unknown): string | undefined {
  try {
    run();
    return undefined;
  } catch (error) {
    const body = toOAuthError(error as HttpError);
    return `${tokenEndpointStatus(error as HttpError)} ${body.error} ${body.code} ${body.reason}`;
  }
}

describe('STS policy gate', () => {
  it('lets an allowed edge through and names the rule, writing no audit line of its own (the issuing tail does)', () => {
    const logs = captureLogs('sts');
    const decision = gateTokenRequest(POLICY, edge(['gateway', 'orders'], 'payments'), undefined, logs.logger, AUDIT);
    assert.equal(decision.allowed, true);
    assert.equal(decision.rule, 'payments.accepts.charge');
    assert.deepEqual(logs.lines, []);
  });

  it('refuses an edge the policy does not declare, naming the rule and cause, and writes one deny line with the policy version', () => {
    const logs = captureLogs('sts');
    const answer = answered(() =>
      gateTokenRequest(POLICY, edge(['gateway', 'billing'], 'orders'), undefined, logs.logger, AUDIT),
    );
    assert.equal(answer, `400 invalid_target ${PolicyDeniedError.code} no_edge`);
    assert.equal(logs.lines.length, 1);
    const line = logs.lines[0] as Record<string, unknown>;
    assert.equal(line.event, 'token_decision');
    assert.equal(line.decision, 'deny');
    assert.equal(line.status, 400);
    assert.equal(line.txn, 'txn-1');
    assert.equal(line.policyVersion, AUDIT.policyVersion);
    assert.equal(typeof line.rule, 'string');
  });

  it('refuses a chain that does not start at an entrypoint as unauthorized_client', () => {
    const logs = captureLogs('sts');
    assert.equal(
      answered(() => gateTokenRequest(POLICY, edge(['billing', 'orders'], 'payments'), undefined, logs.logger, AUDIT)),
      `400 unauthorized_client ${PolicyDeniedError.code} not_entrypoint`,
    );
    assert.equal(logs.lines[0]?.error, 'unauthorized_client');
  });

  it('refuses a token without the scope the rule requires as invalid_scope', () => {
    const logs = captureLogs('sts');
    assert.equal(
      refusalCode(() =>
        gateTokenRequest(POLICY, edge(['gateway'], 'orders', { scopes: new Set() }), undefined, logs.logger, AUDIT),
      ),
      InvalidScopeError.code,
    );
  });

  it('mints through a shadow-mode denial (a missing scope), recording would_deny', () => {
    const logs = captureLogs('sts');
    const decision = gateTokenRequest(POLICY, edge(['gateway', 'billing'], 'payments'), undefined, logs.logger, AUDIT);
    assert.equal(decision.allowed, false);
    assert.equal(decision.mode, 'shadow');
    assert.deepEqual(
      logs.lines.map((l) => [l.event, l.decision, l.rule]),
      [['token_decision', 'would_deny', decision.rule]],
    );
  });

  it('refuses a chain longer than the policy maxDepth before deciding, with cause depth_exceeded', () => {
    const logs = captureLogs('sts');
    let thrown: unknown;
    try {
      gateTokenRequest(
        POLICY,
        edge(['gateway', 'orders', 'billing', 'orders'], 'payments'),
        undefined,
        logs.logger,
        AUDIT,
      );
    } catch (error) {
      thrown = error;
    }
    assert.deepEqual(
      [(thrown as { code?: string }).code, (thrown as { reason?: string }).reason],
      [PolicyDeniedError.code, 'depth_exceeded'],
    );
    assert.equal((thrown as { extensions?: Record<string, unknown> }).extensions?.cause, 'depth_exceeded');
    assert.equal(logs.lines[0]?.cause, 'depth_exceeded');
  });

  it('lowers the depth cap to the operator maxChainDepth, never raises it', () => {
    assert.equal(depthCap(POLICY, undefined), 3);
    assert.equal(depthCap(POLICY, 2), 2);
    assert.equal(depthCap(POLICY, 10), 3);
    const logs = captureLogs('sts');
    assert.equal(
      refusalCode(() => gateTokenRequest(POLICY, edge(['gateway', 'orders'], 'payments'), 1, logs.logger, AUDIT)),
      PolicyDeniedError.code,
    );
    assert.equal(
      refusalCode(() => gateTokenRequest(POLICY, edge(['gateway', 'orders'], 'payments'), 2, logs.logger, AUDIT)),
      undefined,
    );
  });

  it('answers temporarily_unavailable until a policy is loaded', () => {
    assert.equal(
      refusalCode(() => currentPolicy(() => undefined)),
      NotReadyError.code,
    );
    assert.throws(() => currentPolicy(() => undefined), { reason: 'policy', oauthError: 'temporarily_unavailable' });
    const snapshot = { policy: POLICY, version: 7 };
    assert.equal(
      currentPolicy(() => snapshot),
      snapshot,
    );
  });
});
