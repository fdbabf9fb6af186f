import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePolicy } from '../../src/policy/language/parse.ts';
import { expectProblem } from '../helpers/policy.ts';

/** Six header lines, then `services` (indented four spaces) from line 7; gateway takes lines 7–8. */
function graph(
  services: string,
  spec = '  maxDepth: 4\n',
  head = 'apiVersion: baton.dev/v1alpha1\nkind: CallGraph\n',
): string {
  return `${head}metadata: { name: t }\nspec:\n${spec}  services:\n    gateway:\n      entrypoint: true\n${services}`;
}

/** One rule on `orders` (line 11), written as a flow mapping after `- `. */
function rule(body: string, extra = ''): string {
  return graph(`    orders:\n      accepts:\n        - ${body}\n${extra}`);
}

describe('policy validation', () => {
  it('requires the exact apiVersion and kind', () => {
    expectProblem(graph('', undefined, 'apiVersion: baton.dev/v1\nkind: CallGraph\n'), 'POLICY_BAD_API_VERSION', 1, 13);
    expectProblem(graph('', undefined, 'apiVersion: baton.dev/v1alpha1\nkind: callgraph\n'), 'POLICY_BAD_KIND', 2, 7);
  });

  it('requires maxDepth from 1 to 64', () => {
    expectProblem(graph('', '  maxDepth: 0\n'), 'POLICY_BAD_MAX_DEPTH', 5, 13);
    expectProblem(graph('', '  maxDepth: 65\n'), 'POLICY_BAD_MAX_DEPTH', 5, 13);
    expectProblem(graph('', '  maxDepth: 2.5\n'), 'POLICY_BAD_VALUE', 5, 13);
  });

  it('refuses a service name that is not a DNS-1123 label', () => {
    expectProblem(graph('    Orders_Svc: {}\n'), 'POLICY_BAD_SERVICE_NAME', 9, 5);
  });

  it('reports, and never throws on, badly named services used in rules and origins, and badly named rules', () => {
    const text = graph(
      '    Orders_Svc:\n      accepts:\n        - { name: "has space", from: Gateway_X, origins: [Gateway_X] }\n    orders:\n      accepts:\n        - { from: Orders_Svc, origins: [Orders_Svc], user: none }\n',
    );
    const { policy, problems } = parsePolicy(text, 'p.yaml');
    assert.equal(policy, undefined);
    assert.deepEqual([...new Set(problems.filter((p) => p.severity === 'error').map((p) => p.code))].sort(), [
      'POLICY_BAD_RULE_NAME',
      'POLICY_BAD_SERVICE_NAME',
      'POLICY_UNKNOWN_SERVICE',
    ]);
  });

  it("reserves 'external' for tokens from external identity providers", () => {
    expectProblem(graph('    external: {}\n'), 'POLICY_RESERVED_SERVICE_NAME', 9, 5);
  });

  it('refuses a from naming an unknown service', () => {
    expectProblem(rule('{ from: gatway }'), 'POLICY_UNKNOWN_SERVICE', 11, 19);
  });

  it('refuses origins naming an unknown service, pointing at the item', () => {
    expectProblem(rule('{ from: gateway, origins: [gateway, nobody] }'), 'POLICY_UNKNOWN_SERVICE', 11, 47);
  });

  it('refuses a service accepting calls from itself unless allowCycles', () => {
    expectProblem(rule('{ from: orders }'), 'POLICY_SELF_EDGE', 11, 19);
    assert.ok(parsePolicy(rule('{ from: orders, allowCycles: true }', '        - from: gateway\n'), 'p.yaml').policy);
  });

  it('refuses lowercase or unknown methods, since HTTP methods are case-sensitive', () => {
    expectProblem(rule('{ from: gateway, methods: [GET, post] }'), 'POLICY_BAD_METHOD', 11, 43);
    expectProblem(rule('{ from: gateway, methods: [FETCH] }'), 'POLICY_BAD_METHOD', 11, 38);
  });

  it('points inside a path pattern at the bad segment', () => {
    expectProblem(rule('{ from: gateway, paths: ["/orders/**/items"] }'), 'POLICY_BAD_PATH_PATTERN', 11, 45);
    expectProblem(rule('{ from: gateway, paths: [orders] }'), 'POLICY_BAD_PATH_PATTERN', 11, 36);
    expectProblem(rule('{ from: gateway, paths: ["/a/../b"] }'), 'POLICY_BAD_PATH_PATTERN', 11, 40);
    expectProblem(rule('{ from: gateway, paths: ["/a/x*"] }'), 'POLICY_BAD_PATH_PATTERN', 11, 40);
  });

  it('reads gRPC methods as POST to /package.Service/Method, and refuses a malformed one or one beside paths', () => {
    const { policy } = parsePolicy(
      rule('{ from: gateway, grpc: ["shop.v1.Orders/Get", "shop.v1.Orders/*"] }'),
      'p.yaml',
    );
    const accepts = policy?.spec.services.get('orders' as never)?.accepts[0];
    assert.deepEqual(accepts?.methods, ['POST']);
    assert.deepEqual(accepts?.paths, ['/shop.v1.Orders/Get', '/shop.v1.Orders/*']);
    assert.deepEqual(accepts?.grpc, ['shop.v1.Orders/Get', 'shop.v1.Orders/*']);
    expectProblem(rule('{ from: gateway, grpc: ["/shop.Orders/Get"] }'), 'POLICY_BAD_GRPC_METHOD', 11, 35);
    expectProblem(rule('{ from: gateway, grpc: ["shop.Orders"] }'), 'POLICY_BAD_GRPC_METHOD', 11, 35);
    expectProblem(
      rule('{ from: gateway, grpc: ["shop.Orders/Get"], paths: ["/x"] }'),
      'POLICY_GRPC_WITH_PATHS',
      11,
      28,
    );
  });

  it('points inside a scope expression at the offending token', () => {
    expectProblem(rule('{ from: gateway, scopes: "orders:read or and" }'), 'POLICY_BAD_SCOPE_EXPRESSION', 11, 52);
    expectProblem(rule("{ from: gateway, scopes: 'a and (b' }"), 'POLICY_BAD_SCOPE_EXPRESSION', 11, 45);
  });

  it('falls back to the start of a folded scope expression it cannot map', () => {
    expectProblem(
      rule('from: gateway\n          scopes: >-\n            a and\n            or b'),
      'POLICY_BAD_SCOPE_EXPRESSION',
      12,
      19,
    );
  });

  it('refuses two rules with the same name in one service', () => {
    expectProblem(
      rule('{ name: read, from: gateway }', '        - { name: read, from: gateway, methods: [GET] }\n'),
      'POLICY_DUPLICATE_RULE_NAME',
      12,
      19,
    );
  });

  it('refuses a badly formed rule name', () => {
    expectProblem(rule('{ name: "has space", from: gateway }'), 'POLICY_BAD_RULE_NAME', 11, 19);
  });

  it('warns about a path pattern shadowed by an earlier one in the same rule', () => {
    expectProblem(
      rule('{ from: gateway, paths: ["/orders/**", "/orders/*"] }'),
      'POLICY_PATH_SHADOWED',
      11,
      50,
      'warning',
    );
  });

  it('warns about a rule shadowed by an earlier rule on the same edge', () => {
    expectProblem(
      rule(
        '{ from: gateway, methods: [GET], paths: ["/orders/**"] }',
        '        - { from: gateway, methods: [GET], paths: ["/orders/*"] }\n',
      ),
      'POLICY_RULE_SHADOWED',
      12,
      11,
      'warning',
    );
  });

  it('does not call a rule shadowed when the earlier one needs more', () => {
    const { problems } = parsePolicy(
      rule(
        '{ from: gateway, paths: ["/orders/**"], scopes: admin }',
        '        - { from: gateway, paths: ["/orders/*"] }\n',
      ),
      'p.yaml',
    );
    assert.deepEqual(problems, []);
  });

  it('warns about duplicate rules', () => {
    expectProblem(
      rule('{ from: gateway, methods: [GET] }', '        - { from: gateway, methods: [GET], name: again }\n'),
      'POLICY_DUPLICATE_RULE',
      12,
      11,
      'warning',
    );
  });

  it('warns about an item listed twice', () => {
    expectProblem(rule('{ from: gateway, methods: [GET, GET] }'), 'POLICY_DUPLICATE_ITEM', 11, 43, 'warning');
  });

  it("refuses 'from: external' on a service that is not an entrypoint", () => {
    expectProblem(rule('{ from: external }'), 'POLICY_EXTERNAL_NOT_ENTRYPOINT', 11, 19);
  });

  it("refuses origins on 'from: external'", () => {
    expectProblem(
      graph('    other:\n      entrypoint: true\n      accepts: [{ from: external, origins: [gateway] }]\n'),
      'POLICY_ORIGINS_ON_EXTERNAL',
      11,
      35,
    );
  });

  it('warns about a service no user chain from an entrypoint reaches', () => {
    expectProblem(
      graph('    worker: {}\n    orders:\n      accepts: [{ from: worker }]\n'),
      'POLICY_UNREACHABLE_SERVICE',
      10,
      5,
      'warning',
    );
  });

  it('does not warn about a service reached only by service-identity calls that say user: none', () => {
    const { problems } = parsePolicy(
      graph('    worker: {}\n    orders:\n      accepts: [{ from: worker, user: none }, { from: gateway }]\n'),
      'p.yaml',
    );
    assert.deepEqual(problems, []);
  });

  it('warns about an isolated service', () => {
    expectProblem(graph('    lonely: {}\n'), 'POLICY_ISOLATED_SERVICE', 9, 5, 'warning');
  });

  it('warns when no service is an entrypoint', () => {
    const text =
      'apiVersion: baton.dev/v1alpha1\nkind: CallGraph\nmetadata: { name: t }\nspec:\n  services:\n    a: {}\n    b:\n      accepts: [{ from: a, user: none }]\n';
    expectProblem(text, 'POLICY_NO_ENTRYPOINT', 5, 3, 'warning');
  });

  it('warns about an origin that is not an entrypoint on a user rule', () => {
    expectProblem(
      rule('{ from: gateway, origins: [worker] }', '    worker:\n      accepts: [{ from: gateway, user: none }]\n'),
      'POLICY_ORIGIN_NOT_ENTRYPOINT',
      11,
      38,
      'warning',
    );
  });

  it('warns about acr on a rule that takes no user', () => {
    expectProblem(
      rule('{ from: gateway, user: none, acr: [mfa] }', '        - from: gateway\n'),
      'POLICY_RULE_NEVER_MATCHES',
      11,
      40,
      'warning',
    );
  });

  it('normalises a scope expression to its canonical form', () => {
    const { policy } = parsePolicy(rule('{ from: gateway, scopes: "(a  and b) or (c)" }'), 'p.yaml');
    assert.equal(policy?.spec.services.get('orders' as never)?.accepts[0]?.scopes, 'a and b or c');
  });
});
