import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { compilePolicy } from '../../src/policy/language/compile.ts';
import type { CompiledPolicy } from '../../src/policy/language/decision.ts';
import type { ObservedCall } from '../../src/policy/tooling/observed.ts';
import { parsePolicy } from '../../src/policy/language/parse.ts';
import {
  formatSuggestion,
  generalizePath,
  suggestCallGraph,
  type SuggestOptions,
} from '../../src/policy/tooling/suggest.ts';

function call(fields: Partial<ObservedCall> & Pick<ObservedCall, 'chain' | 'to'>): ObservedCall {
  return {
    from: fields.chain[fields.chain.length - 1] ?? 'external',
    method: 'GET',
    path: '/',
    decision: 'allow',
    rule: 'r',
    cause: undefined,
    user: true,
    scopes: [],
    acr: null,
    subjectIssuer: undefined,
    time: 0,
    ...fields,
  };
}

/** The suggestion as `baton policy check` and a sidecar would read it. */
function loadSuggestion(
  calls: readonly ObservedCall[],
  options: Partial<SuggestOptions> = {},
): { yaml: string; problems: string[]; compiled: CompiledPolicy } {
  const yaml = formatSuggestion(suggestCallGraph(calls, { name: 'observed', mode: 'enforce', ...options }));
  const { policy, problems } = parsePolicy(yaml, 'suggested.yaml');
  assert.ok(policy, `${JSON.stringify(problems)}\n${yaml}`);
  return { yaml, problems: problems.map((p) => `${p.code} ${p.message}`), compiled: compilePolicy(policy) };
}

function allows(compiled: CompiledPolicy, c: ObservedCall): boolean {
  return compiled.decide({
    chain: c.chain,
    target: c.to,
    method: c.method,
    path: c.path,
    scopes: new Set(c.scopes ?? []),
    user: c.user ?? true,
  }).allowed;
}

const SHOP_TRAFFIC: ObservedCall[] = [
  call({ chain: [], to: 'gateway', method: 'POST', path: '/checkout', scopes: ['shop', 'orders:write', 'otp'] }),
  call({ chain: [], to: 'gateway', method: 'POST', path: '/checkout', scopes: ['shop', 'orders:write'] }),
  call({ chain: ['gateway'], to: 'orders', method: 'POST', path: '/orders', scopes: ['orders:write'] }),
  call({ chain: ['gateway'], to: 'orders', method: 'GET', path: '/orders/17', scopes: ['orders:write'] }),
  call({
    chain: ['gateway', 'orders'],
    to: 'payments',
    method: 'POST',
    path: '/charges',
    scopes: ['payments:charge'],
    decision: 'would_deny',
  }),
  call({ chain: ['billing-job'], to: 'orders', method: 'GET', path: '/orders/17', user: false, scopes: [] }),
  call({ chain: ['gateway'], to: 'payments', method: 'POST', path: '/charges', decision: 'deny' }),
];

describe('policy suggestion from observed traffic', () => {
  it('writes a policy that checks clean and allows every observed call that went through', () => {
    const { problems, compiled } = loadSuggestion(SHOP_TRAFFIC);
    assert.deepEqual(problems, []);
    for (const c of SHOP_TRAFFIC.filter((c) => c.decision !== 'deny'))
      assert.ok(allows(compiled, c), JSON.stringify(c));
  });

  it('leaves out calls denied in enforce mode unless asked to include them', () => {
    const denied = SHOP_TRAFFIC.find((c) => c.decision === 'deny') as ObservedCall;
    assert.equal(allows(loadSuggestion(SHOP_TRAFFIC).compiled, denied), false);
    assert.equal(allows(loadSuggestion(SHOP_TRAFFIC, { includeDenied: true }).compiled, denied), true);
  });

  it('allows only the methods seen on each path, not every method on every path of the edge', () => {
    const { compiled, yaml } = loadSuggestion(SHOP_TRAFFIC);
    const at = (method: string, path: string) =>
      allows(compiled, call({ chain: ['gateway'], to: 'orders', method, path, scopes: ['orders:write'] }));
    assert.equal(at('POST', '/orders'), true);
    assert.equal(at('GET', '/orders/17'), true);
    assert.equal(at('GET', '/orders'), false);
    assert.equal(at('POST', '/orders/17'), false);
    assert.equal(at('GET', '/orders/18'), false);
    assert.match(yaml, /name: from-gateway-2/);
  });

  it('requires the scopes every call of a rule carried, and none that only some carried', () => {
    const { yaml, compiled } = loadSuggestion(SHOP_TRAFFIC);
    assert.match(yaml, /scopes: orders:write and shop/);
    assert.equal(
      allows(compiled, call({ chain: [], to: 'gateway', method: 'POST', path: '/checkout', scopes: ['shop'] })),
      false,
    );
  });

  it('marks entrypoints, origins, service-identity edges and the longest chain', () => {
    const suggestion = suggestCallGraph(SHOP_TRAFFIC, { name: 'shop' });
    const services = suggestion.document.spec.services;
    assert.equal(services.gateway?.entrypoint, true);
    assert.equal(services['billing-job']?.entrypoint, undefined);
    assert.deepEqual(services.payments?.accepts?.[0]?.origins, ['gateway']);
    assert.equal(services.orders?.accepts?.find((r) => r.from === 'billing-job')?.user, 'none');
    assert.equal(suggestion.document.spec.maxDepth, 2);
    assert.equal(suggestion.document.spec.mode, 'shadow');
  });

  it('generalises numeric, UUID and long hex segments only when asked', () => {
    assert.equal(generalizePath('/orders/17/items/0b9e4a52-3c1f-4d2e-9a7b-1f2e3d4c5b6a'), '/orders/*/items/*');
    assert.equal(generalizePath('/users/5f8d0d55b54764421b7156c3'), '/users/*');
    assert.equal(generalizePath('/orders/latest'), '/orders/latest');
    const latest = call({
      chain: ['gateway'],
      to: 'orders',
      method: 'GET',
      path: '/orders/latest',
      scopes: ['orders:write'],
    });
    const { compiled, problems } = loadSuggestion([...SHOP_TRAFFIC, latest], { generalize: true });
    assert.deepEqual(problems, []);
    assert.equal(
      allows(
        compiled,
        call({ chain: ['gateway'], to: 'orders', method: 'GET', path: '/orders/18', scopes: ['orders:write'] }),
      ),
      true,
    );
    assert.equal(allows(compiled, latest), true);
    assert.equal(
      allows(
        loadSuggestion(SHOP_TRAFFIC).compiled,
        call({ chain: ['gateway'], to: 'orders', method: 'GET', path: '/orders/18', scopes: ['orders:write'] }),
      ),
      false,
    );
  });

  it('allows a cycle only on the edge where a chain came back', () => {
    const calls = [call({ chain: [], to: 'a' }), call({ chain: ['a'], to: 'b' }), call({ chain: ['a', 'b'], to: 'a' })];
    const { yaml, problems, compiled } = loadSuggestion(calls);
    assert.deepEqual(problems, []);
    assert.match(yaml, /from: b[^\n]*\n(?:.*\n)*?.*allowCycles: true/);
    for (const c of calls) assert.ok(allows(compiled, c));
  });

  it('warns about a chain hop whose own calls are not in the logs, and about a path no pattern can name', () => {
    const suggestion = suggestCallGraph(
      [
        call({ chain: ['gateway', 'orders'], to: 'payments' }),
        call({ chain: [], to: 'gateway', path: '/a*b' }),
        call({ chain: [], to: 'gateway', path: '/files/*' }),
      ],
      { name: 'x' },
    );
    assert.equal(suggestion.warnings.length, 4);
    assert.match(suggestion.warnings.join('\n'), /gateway must be an entrypoint[^\n]*every route/);
    // A literal '*' in a request path must not come back as a wildcard.
    assert.equal(suggestion.document.spec.services.gateway?.accepts, undefined);
    assert.match(suggestion.warnings.join('\n'), /gateway → orders/);
  });

  it('always suggests a valid policy that allows every observed call and nothing on an unseen path (property)', () => {
    const service = fc.constantFrom('a', 'b', 'c', 'd');
    const hop = fc.record({
      to: service,
      method: fc.constantFrom('GET', 'POST', 'DELETE'),
      path: fc.constantFrom('/', '/x', '/x/1', '/y/z'),
    });
    const request = fc.record({
      user: fc.boolean(),
      start: service,
      hops: fc.array(hop, { minLength: 1, maxLength: 4 }),
      scopes: fc.subarray(['s1', 's2', 's3:write', 'openid']),
    });
    fc.assert(
      fc.property(fc.array(request, { minLength: 1, maxLength: 8 }), (requests) => {
        const calls: ObservedCall[] = [];
        for (const r of requests) {
          // A user request enters from an IdP at its first service; a service-identity one starts at that service.
          const chain: string[] = r.user ? [] : [r.start];
          if (r.user) calls.push(call({ chain: [], to: r.start, method: 'GET', path: '/', scopes: r.scopes }));
          if (r.user) chain.push(r.start);
          for (const h of r.hops) {
            calls.push(
              call({ chain: [...chain], to: h.to, method: h.method, path: h.path, user: r.user, scopes: r.scopes }),
            );
            chain.push(h.to);
          }
        }
        const { problems, compiled } = loadSuggestion(calls);
        assert.deepEqual(
          problems.filter((p) => !p.startsWith('POLICY_NO_ENTRYPOINT')),
          [],
        );
        for (const c of calls) {
          assert.ok(allows(compiled, c), JSON.stringify(c));
          assert.equal(allows(compiled, { ...c, path: '/never-seen' }), false);
        }
      }),
      { numRuns: 150 },
    );
  });
});
