import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compilePolicy } from '../../src/policy/language/compile.ts';
import type { CompiledPolicy } from '../../src/policy/language/decision.ts';
import { policyFromJSON } from '../../src/policy/language/parse.ts';
import { checkPathPattern, compilePathPattern, pathPatternCovers } from '../../src/policy/language/paths.ts';
import { compileTestPolicy } from '../helpers/policy.ts';

const compile = (yaml: string): CompiledPolicy => compileTestPolicy(yaml, 'p.yaml');

const HEADER = 'apiVersion: baton.dev/v1alpha1\nkind: CallGraph\nmetadata: { name: t }\nspec:\n  services:\n';

describe('path patterns', () => {
  const matches = (pattern: string, path: string): boolean => compilePathPattern(pattern).matches(path);

  it('matches literal segments exactly', () => {
    assert.equal(matches('/orders', '/orders'), true);
    assert.equal(matches('/orders', '/orders/'), false);
    assert.equal(matches('/orders', '/Orders'), false);
    assert.equal(matches('/', '/'), true);
  });

  it('matches * against exactly one non-empty segment', () => {
    assert.equal(matches('/orders/*', '/orders/42'), true);
    assert.equal(matches('/orders/*', '/orders/'), false);
    assert.equal(matches('/orders/*', '/orders/42/items'), false);
    assert.equal(matches('/orders/*/items', '/orders/42/items'), true);
  });

  it('matches a trailing ** against zero or more segments', () => {
    assert.equal(matches('/orders/**', '/orders'), true);
    assert.equal(matches('/orders/**', '/orders/'), true);
    assert.equal(matches('/orders/**', '/orders/1/2/3'), true);
    assert.equal(matches('/orders/**', '/ordersx'), false);
  });

  it('ignores the query string', () => {
    assert.equal(matches('/orders/*', '/orders/1?next=/admin/x'), true);
  });

  it('never matches a path that normalisation could turn into another', () => {
    for (const path of [
      '/orders/../admin',
      '/orders/./1',
      '/orders/%2e%2e/admin',
      '/orders/%2E./x',
      '/orders/a%2Fb',
      '/orders/a%5cb',
      '/orders//1',
      '/orders\\1',
      'orders/1',
      '',
    ]) {
      assert.equal(matches('/orders/**', path), false, path);
    }
    // Path parameters, double encoding, NUL, overlong UTF-8, fullwidth dots (src/policy/language/paths.ts).
    for (const path of [
      '/orders/..;/admin',
      '/orders/%2e%2e;/admin',
      '/orders/.;/x',
      '/orders/1;v=2',
      '/orders/%252e%252e/admin',
      '/orders/1%00',
      '/orders/%C0%AE%C0%AE/admin',
      '/orders/%EF%BC%8E%EF%BC%8E/admin',
    ]) {
      assert.equal(matches('/orders/**', path), false, path);
    }
  });

  it('compares segments percent-decoded once, in patterns and paths alike', () => {
    assert.equal(matches('/orders/a%20b', '/orders/a%20b'), true);
    assert.equal(matches('/orders/%41', '/orders/A'), true);
    assert.equal(matches('/orders/A', '/orders/%41'), true);
    assert.equal(pathPatternCovers('/orders/%41', '/orders/A'), true);
  });

  it('refuses a pattern segment that no request segment could match', () => {
    for (const pattern of ['/orders/a;b', '/orders/%25', '/orders/%00', '/orders/%C0%AE', '/orders/%EF%BC%A1'])
      assert.notEqual(checkPathPattern(pattern), undefined, pattern);
  });

  it('knows when one pattern covers another', () => {
    assert.equal(pathPatternCovers('/orders/**', '/orders/*'), true);
    assert.equal(pathPatternCovers('/orders/**', '/orders'), true);
    assert.equal(pathPatternCovers('/orders/*', '/orders/1'), true);
    assert.equal(pathPatternCovers('/orders/*', '/orders/**'), false);
    assert.equal(pathPatternCovers('/orders/1', '/orders/*'), false);
    assert.equal(pathPatternCovers('/**', '/a/b/**'), true);
  });
});

describe('policy compilation', () => {
  const chain = compile(`${HEADER}    gateway: { entrypoint: true }
    orders: { accepts: [{ from: gateway, scopes: "orders:read or orders:write" }] }
    payments: { accepts: [{ from: orders, scopes: "payments:charge and (fido or otp)" }] }
    ledger: { accepts: [{ from: payments, scopes: ledger:write }] }
    search: { accepts: [{ from: gateway, scopes: search }] }
`);

  it('narrows usable scopes to the edge and every edge reachable from the target', () => {
    assert.deepEqual([...(chain.usableScopes('gateway', 'orders') ?? [])].sort(), [
      'fido',
      'ledger:write',
      'orders:read',
      'orders:write',
      'otp',
      'payments:charge',
    ]);
    assert.deepEqual([...(chain.usableScopes('payments', 'ledger') ?? [])], ['ledger:write']);
  });

  it('has no usable scopes where there is no edge', () => {
    assert.equal(chain.usableScopes('orders', 'gateway'), undefined);
    assert.equal(chain.usableScopes('gateway', 'nowhere'), undefined);
  });

  it('answers service and entrypoint questions', () => {
    assert.equal(chain.hasService('orders'), true);
    assert.equal(chain.hasService('external'), false);
    assert.equal(chain.isEntrypoint('gateway'), true);
    assert.equal(chain.isEntrypoint('orders'), false);
    assert.equal(chain.maxDepth, 4);
    assert.equal(chain.name, 't');
  });

  it('digests the normalised policy, so formatting and locations do not change it', () => {
    const a = compile(
      `${HEADER}    gateway: { entrypoint: true }\n    orders: { accepts: [{ from: gateway, scopes: "a or b" }] }\n`,
    );
    const b = compile(
      `# a comment\n${HEADER}    orders:\n      accepts:\n        - from: gateway\n          scopes: "(a) or  b"\n          user: required\n    gateway:\n      entrypoint: true\n`,
    );
    const c = compile(
      `${HEADER}    gateway: { entrypoint: true }\n    orders: { accepts: [{ from: gateway, scopes: "a and b" }] }\n`,
    );
    assert.equal(a.digest, b.digest);
    assert.notEqual(a.digest, c.digest);
    assert.match(a.digest, /^[A-Za-z0-9_-]{43}$/);
  });

  const bigGraph = (count: number): Record<string, unknown> => {
    const services: Record<string, unknown> = {};
    for (let i = 0; i < count; i++) {
      services[`svc-${i}`] = {
        entrypoint: i < 10,
        accepts:
          i < 10
            ? []
            : [
                {
                  from: `svc-${Math.floor(i / 10)}`,
                  methods: ['GET', 'POST'],
                  paths: ['/api/**'],
                  scopes: `s${i % 50} or admin`,
                },
              ],
      };
    }
    return {
      apiVersion: 'baton.dev/v1alpha1',
      kind: 'CallGraph',
      metadata: { name: 'big' },
      spec: { maxDepth: 6, services },
    };
  };
  const deepChain = {
    chain: ['svc-9', 'svc-99', 'svc-999'],
    target: 'svc-9999',
    method: 'GET',
    path: '/api/x',
    scopes: new Set(['s49']),
    user: true,
  };

  // Absolute load times are measured in bench/policy.bench.ts; a timed test
  // would be flaky on a loaded machine. What a test can hold reliably is the
  // shape: ten times the services must cost about ten times as much (a
  // quadratic step would cost a hundred times). The bound sits between the
  // two, far enough from 10× that a GC pause on a busy machine cannot fail it.
  // Each run is timed in this process's CPU time, not wall time: on a machine
  // whose cores other processes share, wall time also counts the time this
  // process waited for a core (a 46× ratio was seen that way, at load 10 on 2 cores).
  const fastest = (runs: number, work: () => void): number => {
    let best = Infinity;
    for (let i = 0; i < runs; i++) {
      const started = process.cpuUsage();
      work();
      const spent = process.cpuUsage(started);
      best = Math.min(best, spent.user + spent.system);
    }
    return best;
  };
  const yamlGraph = (count: number): string => {
    const lines = [];
    for (let i = 0; i < count; i++) {
      const accepts =
        i < 10
          ? '[]'
          : `[{ from: svc-${Math.floor(i / 10)}, methods: [GET, POST], paths: [/api/**], scopes: s${i % 50} or admin }]`;
      lines.push(`    svc-${i}: { entrypoint: ${i < 10}, accepts: ${accepts} }`);
    }
    return `${HEADER}${lines.join('\n')}\n`.replace('  services:\n', '  maxDepth: 6\n  services:\n');
  };

  it('parses and compiles a YAML graph in time linear in its size', () => {
    const small = yamlGraph(400);
    const large = yamlGraph(4_000);
    compile(small);
    const ratio = fastest(3, () => compile(large)) / fastest(3, () => compile(small));
    assert.ok(ratio < 40, `4,000 services cost ${ratio.toFixed(1)}× 400 services; linear is about 10×`);
    assert.equal(
      compile(large).decide({ ...deepChain, chain: ['svc-3', 'svc-39', 'svc-399'], target: 'svc-3999' }).allowed,
      true,
    );
  });

  it('rebuilds and compiles a 10,000-service graph from policy-server JSON in time linear in its size', () => {
    const small = bigGraph(1_000);
    const large = bigGraph(10_000);
    compilePolicy(policyFromJSON(small));
    const ratio =
      fastest(3, () => compilePolicy(policyFromJSON(large))) / fastest(3, () => compilePolicy(policyFromJSON(small)));
    assert.ok(ratio < 40, `10,000 services cost ${ratio.toFixed(1)}× 1,000 services; linear is about 10×`);
    const decision = compilePolicy(policyFromJSON(large)).decide(deepChain);
    assert.equal(decision.allowed, true, decision.reason);
  });
});
