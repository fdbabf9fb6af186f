/**
 * A call graph across namespaces (#24): services named service.namespace
 * outside the mesh's home namespace, in service keys, `from`, `origins`,
 * rule ids and decisions, and `baton policy check` on such a graph.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parsePolicy } from '../../src/policy/language/parse.ts';
import { runCli } from '../helpers/cli.ts';
import { compileTestPolicy } from '../helpers/policy.ts';

const ACROSS = `
apiVersion: baton.dev/v1alpha1
kind: CallGraph
metadata: { name: shop }
spec:
  maxDepth: 4
  services:
    gateway.web:
      entrypoint: true
    orders:
      accepts:
        - { name: from-gateway, from: gateway.web, methods: [POST], paths: ["/orders"] }
    payments:
      accepts:
        - { from: orders, origins: [gateway.web], methods: [POST], paths: ["/charges"] }
    ledger.finance:
      accepts:
        - { from: payments }
`;

describe('a call graph across namespaces', () => {
  const policy = compileTestPolicy(ACROSS, 'across.yaml');

  it('allows the declared chain between namespaces and names the deciding rule with its qualified service', () => {
    const allowed = policy.decide({
      user: true,
      scopes: new Set(),
      chain: ['gateway.web', 'orders'],
      target: 'payments',
      method: 'POST',
      path: '/charges',
    });
    assert.equal(allowed.allowed, true);
    assert.equal(allowed.rule, 'payments.accepts[0]');
    const first = policy.decide({
      user: true,
      scopes: new Set(),
      chain: ['gateway.web'],
      target: 'orders',
      method: 'POST',
      path: '/orders',
    });
    assert.deepEqual([first.allowed, first.rule], [true, 'orders.accepts.from-gateway']);
    const deep = policy.decide({
      user: true,
      scopes: new Set(),
      chain: ['gateway.web', 'orders', 'payments'],
      target: 'ledger.finance',
      method: 'GET',
      path: '/',
    });
    assert.deepEqual([deep.allowed, deep.rule], [true, 'ledger.finance.accepts[0]']);
  });

  it('refuses the same service name in another namespace, and an edge the graph does not declare', () => {
    const otherNamespace = policy.decide({
      user: true,
      scopes: new Set(),
      chain: ['gateway'],
      target: 'orders',
      method: 'POST',
      path: '/orders',
    });
    assert.equal(otherNamespace.allowed, false, 'gateway (home) is not gateway.web');
    const direct = policy.decide({
      user: true,
      scopes: new Set(),
      chain: ['gateway.web'],
      target: 'payments',
      method: 'POST',
      path: '/charges',
    });
    assert.deepEqual([direct.allowed, direct.rule], [false, 'payments.accepts']);
    const notEntry = policy.decide({
      user: true,
      scopes: new Set(),
      chain: ['ledger.finance'],
      target: 'orders',
      method: 'POST',
      path: '/orders',
    });
    assert.deepEqual([notEntry.allowed, notEntry.rule], [false, 'ledger.finance.entrypoint']);
  });

  it('refuses a name of three labels or a reserved namespace, where it stands', () => {
    for (const [bad, line] of [
      ['orders.shop.svc', 8],
      ['orders.accepts', 8],
    ] as const) {
      const { problems } = parsePolicy(ACROSS.replace('    gateway.web:\n', `    ${bad}:\n`), 'p.yaml');
      const found = problems.find((p) => p.code === 'POLICY_BAD_SERVICE_NAME');
      assert.equal(found?.location.line, line, JSON.stringify(problems));
    }
  });

  it('passes baton policy check', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-across-'));
    try {
      writeFileSync(join(dir, 'callgraph.yaml'), ACROSS);
      const result = await runCli(['policy', 'check', join(dir, 'callgraph.yaml')]);
      assert.equal(result.code, 0, result.stdout + result.stderr);
      assert.match(result.stdout, /callgraph\.yaml: ok/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
