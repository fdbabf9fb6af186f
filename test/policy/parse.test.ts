import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PolicyProblem } from '../../src/policy/language/model.ts';
import { parsePolicy } from '../../src/policy/language/parse.ts';
import { expectProblem } from '../helpers/policy.ts';

/** Six header lines, then `services` (indented four spaces) from line 7. */
function graph(services: string, spec = '  maxDepth: 4\n'): string {
  return `apiVersion: baton.dev/v1alpha1\nkind: CallGraph\nmetadata: { name: t }\nspec:\n${spec}  services:\n${services}`;
}

function problemsOf(text: string): PolicyProblem[] {
  return parsePolicy(text, 'p.yaml').problems;
}

const GATEWAY = '    gateway:\n      entrypoint: true\n';

describe('policy parsing', () => {
  it('parses the design example into a normalised policy with defaults and rule ids', () => {
    const { policy, problems } = parsePolicy(
      graph(
        `${GATEWAY}    orders:\n      accepts:\n        - from: gateway\n          methods: [GET, POST]\n          scopes: "orders:read or orders:write"\n`,
      ),
      'p.yaml',
    );
    assert.deepEqual(problems, []);
    assert.ok(policy);
    const rule = policy.spec.services.get('orders' as never)?.accepts[0];
    assert.equal(rule?.id, 'orders.accepts[0]');
    assert.equal(rule?.user, 'required');
    assert.equal(rule?.mode, 'enforce');
    assert.equal(rule?.allowCycles, false);
    assert.deepEqual(rule?.location, { file: 'p.yaml', line: 11, column: 11 });
  });

  it('gives a named rule the id <service>.accepts.<name>', () => {
    const { policy } = parsePolicy(
      graph(`${GATEWAY}    orders:\n      accepts:\n        - { name: read, from: gateway }\n`),
      'p.yaml',
    );
    assert.equal(policy?.spec.services.get('orders' as never)?.accepts[0]?.id, 'orders.accepts.read');
  });

  it('defaults maxDepth to 4 and treats an empty service entry as a service', () => {
    const { policy, problems } = parsePolicy(
      graph(`${GATEWAY}    orders:\n      accepts: [{ from: gateway }]\n    idle:\n`, ''),
      'p.yaml',
    );
    assert.equal(policy?.spec.maxDepth, 4);
    assert.ok(policy?.spec.services.has('idle' as never));
    assert.deepEqual(
      problems.map((p) => p.code),
      ['POLICY_ISOLATED_SERVICE'],
    );
  });

  it('computes the effective mode from rule, then service, then graph', () => {
    const { policy } = parsePolicy(
      graph(
        `${GATEWAY}    orders:\n      mode: shadow\n      accepts:\n        - from: gateway\n        - { from: gateway, methods: [POST], mode: enforce }\n`,
        '  mode: enforce\n',
      ),
      'p.yaml',
    );
    const rules = policy?.spec.services.get('orders' as never)?.accepts;
    assert.deepEqual(
      rules?.map((r) => r.mode),
      ['shadow', 'enforce'],
    );
    assert.equal(policy?.spec.services.get('gateway' as never)?.mode, 'enforce');
  });

  it('reports YAML syntax errors at their line and column', () => {
    expectProblem(graph(`${GATEWAY}    orders: [unclosed\n`), 'POLICY_YAML_SYNTAX', 10, 1);
  });

  it('refuses duplicate YAML keys, which would silently drop a rule', () => {
    expectProblem(graph(`${GATEWAY}    gateway:\n      entrypoint: false\n`), 'POLICY_DUPLICATE_KEY', 9, 5);
  });

  it('refuses an unknown key, pointing at the key', () => {
    expectProblem(
      graph(`${GATEWAY}    orders:\n      accepts:\n        - from: gateway\n          orgins: [gateway]\n`),
      'POLICY_UNKNOWN_KEY',
      12,
      11,
    );
  });

  it('refuses a missing required key, pointing at its parent', () => {
    expectProblem(
      graph(`${GATEWAY}    orders:\n      accepts:\n        - methods: [GET]\n`),
      'POLICY_MISSING_KEY',
      11,
      11,
    );
  });

  it('refuses a value of the wrong type', () => {
    expectProblem(graph(`    gateway:\n      entrypoint: yes please\n`), 'POLICY_BAD_VALUE', 8, 19);
  });

  it('refuses an unknown user requirement and mode', () => {
    expectProblem(
      graph(`${GATEWAY}    orders:\n      accepts:\n        - { from: gateway, user: maybe }\n`),
      'POLICY_BAD_VALUE',
      11,
      34,
    );
    expectProblem(graph(`${GATEWAY}`, '  mode: audit\n'), 'POLICY_BAD_VALUE', 5, 9);
  });

  it('refuses an empty methods list, which would match nothing', () => {
    expectProblem(
      graph(`${GATEWAY}    orders:\n      accepts:\n        - { from: gateway, methods: [] }\n`),
      'POLICY_BAD_VALUE',
      11,
      37,
    );
  });

  it('refuses a document that is not a mapping', () => {
    expectProblem('- a\n- b\n', 'POLICY_NOT_A_MAPPING', 1, 1);
  });

  it('sorts problems by position', () => {
    const problems = problemsOf(
      graph(`${GATEWAY}    orders:\n      accepts:\n        - { from: nobody, methods: [get] }\n`, '  maxDepth: 0\n'),
    );
    const lines = problems.map((p) => p.location.line);
    assert.deepEqual(
      lines,
      [...lines].sort((a, b) => a - b),
    );
  });

  it('refuses alias bombs', () => {
    const bomb =
      'a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n';
    const problems = problemsOf(bomb);
    assert.equal(problems[0]?.code, 'POLICY_YAML_SYNTAX');
  });
});
