import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { serviceName } from '../../src/core/service-name.ts';
import { InternalError } from '../../src/core/errors.ts';
import {
  edgeRuleId,
  entrypointRuleId,
  isRuleId,
  isRuleName,
  ruleId,
  ruleIdService,
  SPEC_MAX_DEPTH,
  SPEC_SERVICES,
} from '../../src/policy/language/rule-id.ts';
import { compilePolicy } from '../../src/policy/language/compile.ts';
import { parsePolicy } from '../../src/policy/language/parse.ts';

const orders = serviceName('orders');

describe('rule ids', () => {
  it('names an accepts rule by its position, or by its name when it has one', () => {
    assert.equal(ruleId(orders, 0), 'orders.accepts[0]');
    assert.equal(ruleId(orders, 12), 'orders.accepts[12]');
    assert.equal(ruleId(orders, 'read-orders'), 'orders.accepts.read-orders');
    assert.equal(ruleId(orders, 'v1.read_all'), 'orders.accepts.v1.read_all');
  });

  it('names the pseudo-rules that decide without an accepts rule', () => {
    assert.equal(entrypointRuleId(orders), 'orders.entrypoint');
    assert.equal(edgeRuleId(orders), 'orders.accepts');
    assert.equal(SPEC_SERVICES, 'spec.services');
    assert.equal(SPEC_MAX_DEPTH, 'spec.maxDepth');
  });

  for (const [why, rule] of [
    ['a negative index', -1],
    ['a fractional index', 1.5],
    ['an index that is not a number', Number.NaN],
    ['an empty name', ''],
    ['a name with a space', 'read orders'],
    ['a name starting with a dot', '.hidden'],
    ['a name ending with a hyphen', 'read-'],
    ['a name of 64 characters', 'r'.repeat(64)],
    ['a name with a bracket', 'x[0]'],
  ] as const) {
    it(`refuses ${why}, with a typed error`, () => {
      assert.throws(() => ruleId(orders, rule), { code: InternalError.code, reason: 'rule-id' });
    });
  }

  it('accepts exactly the ids it can mint', () => {
    for (const id of [
      'orders.accepts[0]',
      'orders.accepts[7]',
      'orders.accepts.read',
      'orders.entrypoint',
      'orders.accepts',
      'spec.services',
      'spec.maxDepth',
      'spec.accepts[0]',
    ])
      assert.equal(isRuleId(id), true, id);
    for (const id of [
      '',
      'orders',
      'orders.',
      'Orders.accepts[0]',
      'orders.accepts[01]',
      'orders.accepts[-1]',
      'orders.accepts.',
      'orders.accepts.x y',
      'orders.exit',
      'spec.other',
      7,
      undefined,
    ])
      assert.equal(isRuleId(id), false, String(id));
  });

  it('reads the service back from an id, and none from the spec.* pseudo-rules', () => {
    assert.equal(ruleIdService(ruleId(orders, 3)), 'orders');
    assert.equal(ruleIdService(ruleId(orders, 'a.b')), 'orders');
    assert.equal(ruleIdService(entrypointRuleId(orders)), 'orders');
    assert.equal(ruleIdService(ruleId(serviceName('spec'), 0)), 'spec');
    assert.equal(ruleIdService(SPEC_SERVICES), undefined);
    assert.equal(ruleIdService(SPEC_MAX_DEPTH), undefined);
  });

  it('shares the rule-name rule with policy validation', () => {
    assert.equal(isRuleName('read-orders'), true);
    assert.equal(isRuleName('read orders'), false);
  });

  it('is what validation and decisions name', () => {
    const { policy } = parsePolicy(
      readFileSync(new URL('../fixtures/policy-server/callgraph.yaml', import.meta.url), 'utf8'),
      'callgraph.yaml',
    );
    assert.ok(policy);
    const payments = serviceName('payments');
    assert.deepEqual(
      policy.spec.services.get(orders)?.accepts.map((rule) => rule.id),
      [ruleId(orders, 0)],
    );
    assert.deepEqual(
      policy.spec.services.get(payments)?.accepts.map((rule) => rule.id),
      [ruleId(payments, 'charge'), ruleId(payments, 'refunds')],
    );
    const compiled = compilePolicy(policy);
    const decide = (chain: string[], target: string): string =>
      compiled.decide({
        chain,
        target,
        method: 'POST',
        path: '/charges',
        scopes: new Set(['payments:charge']),
        user: true,
      }).rule;
    assert.equal(decide(['gateway', 'orders'], 'payments'), 'payments.accepts.charge');
    assert.equal(decide(['gateway'], 'payments'), 'payments.accepts');
    assert.equal(decide(['orders'], 'payments'), 'orders.entrypoint');
    assert.equal(decide([], 'orders'), 'orders.entrypoint');
    assert.equal(decide(['nobody'], 'orders'), 'spec.services');
    assert.equal(decide(['gateway', 'orders', 'payments', 'orders', 'payments'], 'orders'), 'spec.maxDepth');
  });
});
