import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { diffPolicies } from '../../src/policy/tooling/diff.ts';
import type { CallGraphPolicy } from '../../src/policy/language/model.ts';
import { parsePolicy } from '../../src/policy/language/parse.ts';

const FIXTURE = readFileSync(new URL('../fixtures/policy-server/callgraph.yaml', import.meta.url), 'utf8');

function policyOf(text: string): CallGraphPolicy {
  const { policy, problems } = parsePolicy(text, 'callgraph.yaml');
  assert.ok(policy, JSON.stringify(problems));
  return policy;
}

const shop = policyOf(FIXTURE);

describe('policy diff', () => {
  it('finds no difference between a policy and itself, or a re-commented copy', () => {
    assert.equal(diffPolicies(shop, shop).equal, true);
    assert.equal(diffPolicies(shop, policyOf(`# reviewed\n${FIXTURE}`)).equal, true);
  });

  it('reports a new service, its edge and the rule on it', () => {
    const after = policyOf(
      `${FIXTURE}    refunds:\n      accepts:\n        - from: payments\n          methods: [POST]\n          paths: ["/refunds"]\n`,
    );
    const diff = diffPolicies(shop, after);
    assert.deepEqual(diff.services.added, ['refunds']);
    assert.deepEqual(
      diff.edges.added.map((e) => [e.from, e.to]),
      [['payments', 'refunds']],
    );
  });

  it('names the fields of a rule that changed', () => {
    const after = policyOf(
      FIXTURE.replace('methods: [GET, POST]', 'methods: [GET]').replace(
        '"orders:read or orders:write"',
        '"orders:read"',
      ),
    );
    const [change] = diffPolicies(shop, after).rules.changed;
    assert.equal(change?.id, 'orders.accepts[0]');
    assert.deepEqual(change?.changes, [
      { field: 'methods', before: ['GET', 'POST'], after: ['GET'] },
      { field: 'scopes', before: 'orders:read or orders:write', after: 'orders:read' },
    ]);
  });

  it('matches named rules by name, so reordering them is no change', () => {
    const charge = FIXTURE.slice(FIXTURE.indexOf('        - name: charge'), FIXTURE.indexOf('        - name: refunds'));
    const reordered = FIXTURE.replace(charge, '') + charge;
    assert.equal(diffPolicies(shop, policyOf(reordered)).equal, true);
  });

  it('reports a rule added to an edge that already existed', () => {
    const after = policyOf(
      FIXTURE.replace(
        '          mode: shadow\n',
        '          mode: shadow\n        - name: audit\n          from: orders\n          methods: [GET]\n          paths: ["/audit"]\n',
      ),
    );
    const diff = diffPolicies(shop, after);
    assert.deepEqual(diff.edges.added, []);
    assert.deepEqual(
      diff.rules.added.map((r) => r.id),
      ['payments.accepts.audit'],
    );
  });

  it('reports entrypoint, maxDepth and mode changes', () => {
    const after = policyOf(
      FIXTURE.replace('maxDepth: 4', 'maxDepth: 3')
        .replace('    orders:\n', '    orders:\n      entrypoint: true\n')
        .replace('          mode: shadow\n', ''),
    );
    const diff = diffPolicies(shop, after);
    assert.deepEqual(diff.maxDepth, { before: 4, after: 3 });
    assert.deepEqual(diff.entrypoints.added, ['orders']);
    assert.deepEqual(
      diff.rules.changed.map((c) => [c.id, c.changes.map((f) => f.field)]),
      [['payments.accepts.refunds', ['mode']]],
    );
  });

  it('is empty exactly when the policies are equal, and symmetric in what it finds', () => {
    const variants = [
      FIXTURE,
      FIXTURE.replace('maxDepth: 4', 'maxDepth: 6'),
      FIXTURE.replace(
        'methods: [POST]\n          paths: ["/charges"]',
        'methods: [POST, PUT]\n          paths: ["/charges"]',
      ),
      FIXTURE.replace('          mode: shadow\n', ''),
      FIXTURE.replace('      entrypoint: true\n', '      entrypoint: true\n      mode: shadow\n'),
    ].map(policyOf);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: variants.length - 1 }),
        fc.integer({ min: 0, max: variants.length - 1 }),
        (i, j) => {
          const forward = diffPolicies(variants[i] as CallGraphPolicy, variants[j] as CallGraphPolicy);
          const backward = diffPolicies(variants[j] as CallGraphPolicy, variants[i] as CallGraphPolicy);
          assert.equal(forward.equal, i === j);
          assert.equal(backward.equal, forward.equal);
          assert.equal(forward.rules.changed.length, backward.rules.changed.length);
          assert.deepEqual(forward.services.added, backward.services.removed);
        },
      ),
    );
  });
});
