import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { compilePolicy } from '../../src/policy/language/compile.ts';
import type { CompiledPolicy, Decision, DecisionInput } from '../../src/policy/language/decision.ts';
import { policyFromJSON } from '../../src/policy/language/parse.ts';
import { compileTestPolicy } from '../helpers/policy.ts';

const compile = (yaml: string): CompiledPolicy => compileTestPolicy(yaml, 'p.yaml');

const SHOP = compile(`
apiVersion: baton.dev/v1alpha1
kind: CallGraph
metadata: { name: shop }
spec:
  maxDepth: 3
  services:
    gateway:
      entrypoint: true
    admin:
      entrypoint: true
      accepts:
        - { name: console, from: external, methods: [GET], paths: ["/admin/**"], scopes: admin, acr: [mfa] }
    orders:
      accepts:
        - from: gateway
          methods: [GET, POST]
          paths: ["/orders", "/orders/*"]
          scopes: "orders:read or orders:write"
        - { from: admin }
        - { from: audit, user: none }
        - { from: payments, allowCycles: true, user: optional }
    payments:
      accepts:
        - name: charge
          from: orders
          origins: [gateway]
          methods: [POST]
          paths: ["/charges"]
          scopes: "payments:charge and (fido or otp)"
          acr: [urn:baton:acr:mfa]
        - { name: lookup, from: orders, origins: [admin], methods: [GET], mode: shadow }
    audit:
      accepts: [{ from: gateway, user: optional }]
    ledger:
      mode: shadow
      accepts: [{ from: orders }]
`);

function decide(input: Partial<DecisionInput> & { chain: string[]; target: string }, scopes: string[] = []): Decision {
  return SHOP.decide({ user: true, scopes: new Set(scopes), ...input });
}

function denied(decision: Decision, cause: string, rule: string): void {
  assert.equal(decision.allowed, false, decision.reason);
  assert.equal(decision.allowed ? undefined : decision.cause, cause);
  assert.equal(decision.rule, rule);
}

describe('call-graph decisions', () => {
  it('allows the design chain and names the rule that allowed it', () => {
    const decision = decide(
      { chain: ['gateway', 'orders'], target: 'payments', method: 'POST', path: '/charges', acr: 'urn:baton:acr:mfa' },
      ['payments:charge', 'fido'],
    );
    assert.deepEqual(decision, {
      allowed: true,
      rule: 'payments.accepts.charge',
      reason: 'orders→payments allowed by payments.accepts.charge',
      mode: 'enforce',
    });
  });

  it('refuses an unknown service anywhere in the chain', () => {
    denied(decide({ chain: ['gateway'], target: 'nowhere' }), 'unknown_service', 'spec.services');
    denied(decide({ chain: ['intruder'], target: 'orders' }), 'unknown_service', 'spec.services');
  });

  it('refuses a chain longer than maxDepth', () => {
    denied(
      decide({ chain: ['gateway', 'orders', 'payments', 'orders'], target: 'ledger' }),
      'depth_exceeded',
      'spec.maxDepth',
    );
  });

  it('refuses a user chain that does not start at an entrypoint', () => {
    denied(
      decide({ chain: ['orders'], target: 'payments', method: 'POST', path: '/charges' }),
      'not_entrypoint',
      'orders.entrypoint',
    );
  });

  it('lets a service-identity call start anywhere', () => {
    assert.equal(decide({ chain: ['audit'], target: 'orders', user: false }).allowed, true);
  });

  it('refuses a hop that is not an edge, naming the callee', () => {
    denied(decide({ chain: ['gateway', 'payments'], target: 'orders' }), 'no_edge', 'payments.accepts');
    denied(decide({ chain: ['gateway'], target: 'payments' }), 'no_edge', 'payments.accepts');
  });

  it('refuses a cycle unless the closing edge allows cycles', () => {
    denied(decide({ chain: ['gateway', 'orders', 'ledger'], target: 'orders' }), 'no_edge', 'orders.accepts');
    const cycle = decide({
      chain: ['gateway', 'orders', 'payments'],
      target: 'orders',
      method: 'GET',
      path: '/orders',
    });
    assert.equal(cycle.allowed, true, cycle.reason);
    assert.equal(cycle.rule, 'orders.accepts[3]');
  });

  it('refuses a cycle through an edge without allowCycles', () => {
    const policy = compile(`
apiVersion: baton.dev/v1alpha1
kind: CallGraph
metadata: { name: loop }
spec:
  services:
    a: { entrypoint: true, accepts: [{ from: b }] }
    b: { accepts: [{ from: a }] }
`);
    const decision = policy.decide({ chain: ['a', 'b'], target: 'a', scopes: new Set(), user: true });
    assert.equal(decision.allowed ? undefined : decision.cause, 'cycle');
    assert.equal(decision.rule, 'a.accepts');
  });

  it('refuses a chain that did not start at a required origin', () => {
    const policy = compile(`
apiVersion: baton.dev/v1alpha1
kind: CallGraph
metadata: { name: origins }
spec:
  services:
    web: { entrypoint: true }
    mobile: { entrypoint: true }
    orders: { accepts: [{ from: web }, { from: mobile }] }
    payments: { accepts: [{ from: orders, origins: [web] }] }
`);
    const decision = policy.decide({ chain: ['mobile', 'orders'], target: 'payments', scopes: new Set(), user: true });
    denied(decision, 'origin', 'payments.accepts[0]');
  });

  it('refuses a service-identity call where a user is required, and a user where none is allowed', () => {
    denied(decide({ chain: ['gateway'], target: 'orders', user: false }), 'user', 'orders.accepts[0]');
    denied(decide({ chain: ['gateway', 'audit'], target: 'orders' }), 'user', 'orders.accepts[2]');
  });

  it('compares methods case-sensitively', () => {
    denied(
      decide({ chain: ['gateway'], target: 'orders', method: 'get', path: '/orders' }, ['orders:read']),
      'method',
      'orders.accepts[0]',
    );
  });

  it('refuses a path outside the edge, and a dot-segment path that would escape it', () => {
    denied(
      decide({ chain: ['gateway'], target: 'orders', method: 'GET', path: '/orders/1/items' }, ['orders:read']),
      'path',
      'orders.accepts[0]',
    );
    denied(
      decide({ chain: ['gateway'], target: 'orders', method: 'GET', path: '/orders/../admin' }, ['orders:read']),
      'path',
      'orders.accepts[0]',
    );
    assert.equal(
      decide({ chain: ['gateway'], target: 'orders', method: 'GET', path: '/orders/1?x=/a/b' }, ['orders:read'])
        .allowed,
      true,
    );
  });

  it('refuses when the scope expression does not hold', () => {
    denied(
      decide({ chain: ['gateway'], target: 'orders', method: 'GET', path: '/orders' }, ['payments:charge']),
      'scope',
      'orders.accepts[0]',
    );
  });

  it('asks for step-up with the rule acr values when acr is the only failure', () => {
    const decision = decide(
      { chain: ['gateway', 'orders'], target: 'payments', method: 'POST', path: '/charges', acr: 'pwd' },
      ['payments:charge', 'otp'],
    );
    denied(decision, 'acr', 'payments.accepts.charge');
    assert.deepEqual(decision.allowed ? undefined : decision.acrValues, ['urn:baton:acr:mfa']);
  });

  it('explains a denial by the rule that got furthest', () => {
    // charge fails at origin; lookup (origin admin) passes origin and user, then fails at method.
    const decision = decide({ chain: ['admin', 'orders'], target: 'payments', method: 'POST', path: '/charges' });
    denied(decision, 'method', 'payments.accepts.lookup');
  });

  it('enforces a denial when an enforced rule covers the route, even if a shadow rule got furthest', () => {
    // lookup (shadow) got furthest, but charge (enforced) covers POST /charges: letting this through would fail open.
    const decision = decide({ chain: ['admin', 'orders'], target: 'payments', method: 'POST', path: '/charges' });
    assert.equal(decision.allowed, false);
    assert.equal(decision.mode, 'enforce');
  });

  it('observes a denial (shadow) when only shadow rules cover the route', () => {
    const decision = decide({ chain: ['gateway', 'orders'], target: 'payments', method: 'GET', path: '/charges/1' });
    denied(decision, 'origin', 'payments.accepts.lookup');
    assert.equal(decision.mode, 'shadow');
  });

  it('enforces at the STS (no route known) unless every rule on the edge is in shadow mode', () => {
    const decision = decide({ chain: ['gateway', 'orders'], target: 'payments' }, []);
    denied(decision, 'scope', 'payments.accepts.charge');
    assert.equal(decision.mode, 'enforce');
  });

  it('decides the edge alone when method and path are absent, as the STS does', () => {
    assert.equal(decide({ chain: ['gateway'], target: 'orders' }, ['orders:write']).allowed, true);
  });

  it('allows an external token at an entrypoint with no external rules', () => {
    assert.deepEqual(decide({ chain: [], target: 'gateway' }), {
      allowed: true,
      rule: 'gateway.entrypoint',
      reason: 'external token allowed at entrypoint gateway',
      mode: 'enforce',
    });
  });

  it('refuses an external token anywhere but an entrypoint', () => {
    denied(decide({ chain: [], target: 'orders' }), 'not_entrypoint', 'orders.entrypoint');
  });

  it("restricts an external token by the entrypoint's from: external rules", () => {
    denied(
      decide({ chain: [], target: 'admin', method: 'DELETE', path: '/admin/x' }, ['admin']),
      'method',
      'admin.accepts.console',
    );
    denied(
      decide({ chain: [], target: 'admin', method: 'GET', path: '/admin/x' }, ['admin']),
      'acr',
      'admin.accepts.console',
    );
    assert.equal(
      decide({ chain: [], target: 'admin', method: 'GET', path: '/admin/x', acr: 'mfa' }, ['admin']).allowed,
      true,
    );
  });

  it("carries the deciding rule's effective mode, and the service's for pseudo-rules", () => {
    assert.equal(decide({ chain: ['gateway', 'orders'], target: 'ledger' }).mode, 'shadow');
    const pseudo = decide({ chain: ['gateway'], target: 'ledger' });
    denied(pseudo, 'no_edge', 'ledger.accepts');
    assert.equal(pseudo.mode, 'shadow');
  });

  it('never echoes control characters from the request into a reason', () => {
    const decision = decide({ chain: ['gateway'], target: 'orders', method: 'GET', path: '/x\r\nforged: 1' }, [
      'orders:read',
    ]);
    assert.ok(!/[\r\n]/.test(decision.reason));
  });
});

// --- properties over generated graphs ---

const NAMES = ['s0', 's1', 's2', 's3', 's4', 's5'];
const METHODS = ['GET', 'POST', 'DELETE'];
const PATHS = ['/a', '/a/*', '/a/**', '/b', '/**'];
const SCOPES = ['x', 'y', 'z'];

interface RawRule {
  from: string;
  methods?: string[];
  paths?: string[];
  scopes?: string;
  user?: 'required' | 'optional' | 'none';
  origins?: string[];
  allowCycles?: boolean;
  acr?: string[];
}

const ruleFor = (self: string): fc.Arbitrary<RawRule> =>
  fc
    .record(
      {
        from: fc.constantFrom(...NAMES),
        methods: fc.subarray(METHODS, { minLength: 1 }),
        paths: fc.subarray(PATHS, { minLength: 1 }),
        scopes: fc.constantFrom('x', 'x or y', 'x and not z', 'y and (x or z)'),
        user: fc.constantFrom('required' as const, 'optional' as const, 'none' as const),
        origins: fc.subarray(NAMES, { minLength: 1 }),
        allowCycles: fc.boolean(),
        acr: fc.constant(['mfa']).map((acr) => [...acr]),
      },
      { requiredKeys: ['from'] },
    )
    .map((rule) => (rule.from === self ? { ...rule, allowCycles: true } : rule));

const graphArb = fc
  .record({
    maxDepth: fc.integer({ min: 1, max: 5 }),
    entrypoints: fc.subarray(NAMES, { minLength: 1 }),
    accepts: fc.tuple(...NAMES.map((name) => fc.array(ruleFor(name), { maxLength: 4 }))),
  })
  .map(({ maxDepth, entrypoints, accepts }) => ({
    apiVersion: 'baton.dev/v1alpha1',
    kind: 'CallGraph',
    metadata: { name: 'generated' },
    spec: {
      maxDepth,
      services: Object.fromEntries(
        NAMES.map((name, i) => [name, { entrypoint: entrypoints.includes(name), accepts: accepts[i] }]),
      ),
    },
  }));

type RawGraph = typeof graphArb extends fc.Arbitrary<infer T> ? T : never;

const inputArb: fc.Arbitrary<DecisionInput> = fc.record({
  chain: fc.array(fc.constantFrom(...NAMES, 'ghost'), { maxLength: 7 }),
  target: fc.constantFrom(...NAMES),
  method: fc.option(fc.constantFrom(...METHODS, 'get'), { nil: undefined }),
  path: fc.option(fc.constantFrom('/a', '/a/1', '/a/1/2', '/b', '/c', '/a/../b', '/a//1'), { nil: undefined }),
  scopes: fc.subarray(SCOPES).map((s) => new Set(s) as ReadonlySet<string>),
  acr: fc.option(fc.constant('mfa'), { nil: undefined }),
  user: fc.boolean(),
});

const compileRaw = (raw: RawGraph): CompiledPolicy => compilePolicy(policyFromJSON(raw));

describe('call-graph decisions (properties)', () => {
  it('allows a chain only when every consecutive hop is an edge of the policy', () => {
    fc.assert(
      fc.property(graphArb, inputArb, (raw, input) => {
        const decision = compileRaw(raw).decide(input);
        if (!decision.allowed) return;
        const hops = [...input.chain, input.target];
        for (let i = 1; i < hops.length; i++) {
          const rules = (raw.spec.services as Record<string, { accepts: RawRule[] }>)[hops[i] as string]?.accepts ?? [];
          assert.ok(
            rules.some((r) => r.from === hops[i - 1]),
            `hop ${hops[i - 1]}→${hops[i]} allowed without an edge`,
          );
        }
      }),
      { numRuns: 300 },
    );
  });

  it('never turns an allow into a deny when a rule is added', () => {
    fc.assert(
      fc.property(graphArb, inputArb, fc.nat(NAMES.length - 1), fc.nat(4), (raw, input, at, position) => {
        const before = compileRaw(raw).decide(input);
        if (!before.allowed) return;
        const name = NAMES[at] as string;
        return fc.assert(
          fc.property(ruleFor(name), (extra) => {
            const wider = structuredClone(raw);
            const accepts = (wider.spec.services as Record<string, { accepts: RawRule[] }>)[name]?.accepts as RawRule[];
            accepts.splice(Math.min(position, accepts.length), 0, extra);
            assert.equal(compileRaw(wider).decide(input).allowed, true);
          }),
          { numRuns: 5 },
        );
      }),
      { numRuns: 200 },
    );
  });

  it('decides deterministically and digests deterministically', () => {
    fc.assert(
      fc.property(graphArb, inputArb, (raw, input) => {
        const a = compileRaw(raw);
        const b = compileRaw(structuredClone(raw));
        assert.equal(a.digest, b.digest);
        assert.deepEqual(a.decide(input), a.decide(input));
        assert.deepEqual(a.decide(input), b.decide(input));
      }),
      { numRuns: 200 },
    );
  });

  it('always denies a chain deeper than maxDepth', () => {
    fc.assert(
      fc.property(graphArb, inputArb, (raw, input) => {
        const decision = compileRaw(raw).decide(input);
        if (input.chain.length > raw.spec.maxDepth) assert.equal(decision.allowed, false);
      }),
      { numRuns: 300 },
    );
  });
});

describe('policy matching on the subject issuer (RFC 9493 iss_sub)', () => {
  const IDPS = compile(`
apiVersion: baton.dev/v1alpha1
kind: CallGraph
metadata: { name: idps }
spec:
  services:
    gateway:
      entrypoint: true
      accepts:
        - { name: staff, from: external, paths: ["/staff/**"], issuers: ["https://login.example.test/realms/staff"] }
        - { name: public, from: external, paths: ["/shop/**"] }
    orders:
      accepts:
        - { name: staff-only, from: gateway, issuers: ["https://login.example.test/realms/staff"] }
`);
  const STAFF = 'https://login.example.test/realms/staff';
  const CUSTOMERS = 'https://login.example.test/realms/customers';

  it('allows a subject from a listed issuer and refuses the same sub from another, naming the cause', () => {
    const base = { chain: ['gateway'], target: 'orders', scopes: new Set<string>(), user: true };
    assert.equal(IDPS.decide({ ...base, subjectIssuer: STAFF }).allowed, true);
    const other = IDPS.decide({ ...base, subjectIssuer: CUSTOMERS });
    assert.equal(other.allowed, false);
    assert.equal(!other.allowed && other.cause, 'issuer');
    assert.equal(other.rule, 'orders.accepts.staff-only');
    assert.match(other.reason, /realms\/customers/);
    assert.equal(IDPS.decide({ ...base }).allowed, false, 'no subject issuer is no match');
  });

  it('restricts routes at the entrypoint by the issuer that authenticated the user', () => {
    const external = { chain: [], target: 'gateway', method: 'GET', scopes: new Set<string>(), user: true };
    assert.equal(IDPS.decide({ ...external, path: '/staff/x', subjectIssuer: STAFF }).allowed, true);
    assert.equal(IDPS.decide({ ...external, path: '/staff/x', subjectIssuer: CUSTOMERS }).allowed, false);
    assert.equal(IDPS.decide({ ...external, path: '/shop/x', subjectIssuer: CUSTOMERS }).allowed, true);
  });
});
