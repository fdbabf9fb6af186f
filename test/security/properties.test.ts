/**
 * Properties of the parsers and the evaluator on the security boundary:
 * what must hold for every input, not just the ones a test thought of.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ActChainError, buildAct, callerChain, unwindAct } from '../../src/core/act-chain.ts';
import {
  formatScopeExpression,
  parseScopeExpression,
  ScopeExpressionError,
  type ScopeExpressionNode,
} from '../../src/core/scope-expression.ts';
import { compilePolicy } from '../../src/policy/language/compile.ts';
import type { CompiledPolicy } from '../../src/policy/language/decision.ts';
import { parsePolicy } from '../../src/policy/language/parse.ts';
import { isTokenError } from '../../src/token/errors.ts';
import { isCanonicalBase64url, preparseToken } from '../../src/token/preparse.ts';

const algorithms = new Set(['ES256', 'RS256']);
const b64 = (value: unknown): string =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

describe('token pre-parser properties', () => {
  it('throws nothing but token errors, whatever the input', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary' }),
          fc.array(fc.base64String(), { maxLength: 4 }).map((p) => p.join('.')),
        ),
        (input) => {
          try {
            preparseToken(input, { maxTokenBytes: 8192, algorithms });
          } catch (error) {
            assert.ok(isTokenError(error), String(error));
          }
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('accepts one spelling per byte string: two canonical segments that decode alike are equal', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 70 }),
        fc.string({
          unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_='.split('')),
          maxLength: 100,
        }),
        (bytes, other) => {
          const canonical = Buffer.from(bytes).toString('base64url');
          if (canonical !== '') assert.ok(isCanonicalBase64url(canonical));
          if (isCanonicalBase64url(other) && Buffer.from(other, 'base64url').equals(Buffer.from(bytes)))
            assert.equal(other, canonical);
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('calls a string canonical base64url exactly when it survives a decode and re-encode unchanged', () => {
    fc.assert(
      fc.property(
        fc.string({
          unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/. '.split('')),
          maxLength: 12,
        }),
        (text) => {
          assert.equal(isCanonicalBase64url(text), Buffer.from(text, 'base64url').toString('base64url') === text, text);
        },
      ),
      { numRuns: 5_000 },
    );
  });

  it('lets through only an allow-listed alg with typ at+jwt and neither crit nor b64', () => {
    const header = fc.record(
      {
        alg: fc.constantFrom('ES256', 'RS256', 'none', 'NONE', 'HS256', 'es256', 'EdDSA'),
        typ: fc.option(fc.constantFrom('at+jwt', 'AT+JWT', 'application/at+jwt', 'JWT', 'id_token+jwt'), {
          nil: undefined,
        }),
        crit: fc.option(fc.constant(['exp']), { nil: undefined }),
        b64: fc.option(fc.boolean(), { nil: undefined }),
      },
      { requiredKeys: ['alg'] },
    );
    fc.assert(
      fc.property(header, (h) => {
        const token = `${b64(h)}.${b64({ sub: 'a' })}.${b64('signature')}`;
        let accepted = true;
        try {
          preparseToken(token, { maxTokenBytes: 8192, algorithms });
        } catch (error) {
          assert.ok(isTokenError(error));
          accepted = false;
        }
        const expected =
          algorithms.has(h.alg) &&
          h.typ !== undefined &&
          /^(application\/)?at\+jwt$/i.test(h.typ) &&
          h.crit === undefined &&
          h.b64 === undefined;
        assert.equal(accepted, expected, JSON.stringify(h));
      }),
      { numRuns: 1_000 },
    );
  });
});

describe('act unwinding properties', () => {
  const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,8}$/);

  it('round-trips every chain within maxDepth and refuses every longer one', () => {
    fc.assert(
      fc.property(fc.array(name, { maxLength: 12 }), fc.integer({ min: 1, max: 8 }), (chain, maxDepth) => {
        const act = buildAct(chain);
        if (chain.length <= maxDepth) assert.deepEqual(unwindAct(act, maxDepth), chain);
        else
          assert.throws(
            () => unwindAct(act, maxDepth),
            (e: unknown) => e instanceof ActChainError && e.reason === 'too-deep',
          );
      }),
    );
  });

  it('throws only ActChainError for any JSON value, and a chain it returns names only string actors', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (act) => {
        try {
          const chain = unwindAct(act, 16);
          assert.ok(chain.every((s) => typeof s === 'string' && s !== ''));
        } catch (error) {
          assert.ok(error instanceof ActChainError);
        }
      }),
      { numRuns: 2_000 },
    );
  });

  it('accepts a chain only when its newest actor is the client_id', () => {
    fc.assert(
      fc.property(fc.array(name, { minLength: 1, maxLength: 5 }), name, (chain, clientId) => {
        let accepted: string[] | undefined;
        try {
          accepted = callerChain({ act: buildAct(chain), client_id: clientId }, 16);
        } catch {
          accepted = undefined;
        }
        if (accepted !== undefined) assert.equal(accepted.at(-1), clientId);
        if (chain.at(-1) !== clientId) assert.equal(accepted, undefined);
      }),
    );
  });
});

describe('scope expression properties', () => {
  const scope = fc.constantFrom('a', 'b', 'c', 'orders:read', 'x.y');
  const node: fc.Arbitrary<ScopeExpressionNode> = fc.letrec<{ node: ScopeExpressionNode }>((tie) => ({
    node: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      scope.map((s) => ({ type: 'scope' as const, scope: s })),
      tie('node').map((operand) => ({ type: 'not' as const, operand })),
      fc
        .tuple(fc.constantFrom('and' as const, 'or' as const), fc.array(tie('node'), { minLength: 2, maxLength: 3 }))
        .map(([type, operands]) => ({ type, operands })),
    ),
  })).node;
  const meaning = (n: ScopeExpressionNode, held: ReadonlySet<string>): boolean =>
    n.type === 'scope'
      ? held.has(n.scope)
      : n.type === 'not'
        ? !meaning(n.operand, held)
        : n.type === 'and'
          ? n.operands.every((o) => meaning(o, held))
          : n.operands.some((o) => meaning(o, held));

  it('parses what it formats to an expression with the same meaning', () => {
    fc.assert(
      fc.property(node, fc.subarray(['a', 'b', 'c', 'orders:read', 'x.y']), (ast, held) => {
        const parsed = parseScopeExpression(formatScopeExpression(ast));
        assert.equal(parsed.evaluate(new Set(held)), meaning(ast, new Set(held)));
      }),
      { numRuns: 1_000 },
    );
  });

  it('throws only ScopeExpressionError for arbitrary text, nesting bombs included', () => {
    const text = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.integer({ min: 1, max: 5_000 }).map((n) => '('.repeat(n) + 'a' + ')'.repeat(n)),
      fc.integer({ min: 1, max: 3_000 }).map((n) => 'not '.repeat(n) + 'a'),
    );
    fc.assert(
      fc.property(text, (source) => {
        try {
          parseScopeExpression(source);
        } catch (error) {
          assert.ok(error instanceof ScopeExpressionError, String(error));
        }
      }),
      { numRuns: 1_000 },
    );
  });
});

describe('policy evaluator properties', () => {
  const NAMES = ['a', 'b', 'c', 'd'] as const;
  const edge = fc.record({
    from: fc.constantFrom(...NAMES),
    to: fc.constantFrom(...NAMES),
    user: fc.constantFrom('required', 'optional', 'none'),
    cycles: fc.boolean(),
  });
  const graph = fc.record({
    maxDepth: fc.integer({ min: 1, max: 5 }),
    entrypoints: fc.subarray([...NAMES], { minLength: 1 }),
    edges: fc.array(edge, { maxLength: 10 }),
  });
  type Graph = typeof graph extends fc.Arbitrary<infer T> ? T : never;
  const toYaml = (g: Graph): string => {
    const lines = [
      'apiVersion: baton.dev/v1alpha1',
      'kind: CallGraph',
      'metadata: { name: p }',
      'spec:',
      `  maxDepth: ${g.maxDepth}`,
      '  services:',
    ];
    for (const n of NAMES) {
      lines.push(`    ${n}:`, `      entrypoint: ${g.entrypoints.includes(n)}`);
      const rules = g.edges.filter((e) => e.to === n);
      lines.push(rules.length === 0 ? '      accepts: []' : '      accepts:');
      for (const r of rules) lines.push(`        - { from: ${r.from}, user: ${r.user}, allowCycles: ${r.cycles} }`);
    }
    return lines.join('\n') + '\n';
  };
  const compile = (g: Graph): CompiledPolicy | undefined => {
    const { policy } = parsePolicy(toYaml(g), 'p.yaml');
    return policy === undefined ? undefined : compilePolicy(policy);
  };
  const input = fc.record({
    chain: fc.array(fc.constantFrom(...NAMES), { maxLength: 6 }),
    target: fc.constantFrom(...NAMES),
    user: fc.boolean(),
  });

  it('allows a chain only if every hop in it is an edge of the graph, within maxDepth, from an entrypoint or as a service', () => {
    fc.assert(
      fc.property(graph, input, (g, q) => {
        const policy = compile(g);
        if (policy === undefined) return;
        const decision = policy.decide({ ...q, scopes: new Set() });
        if (!decision.allowed) return;
        const hops = [...q.chain, q.target];
        for (let i = 0; i + 1 < hops.length; i++)
          assert.ok(
            g.edges.some((e) => e.from === hops[i] && e.to === hops[i + 1]),
            `hop ${hops[i]}→${hops[i + 1]} allowed without an edge`,
          );
        assert.ok(q.chain.length <= g.maxDepth);
        if (q.chain.length === 0) assert.ok(g.entrypoints.includes(q.target));
        else if (q.user) assert.ok(g.entrypoints.includes(q.chain[0] as (typeof NAMES)[number]));
      }),
      { numRuns: 1_500 },
    );
  });

  it('never turns an allow into a deny by adding an edge', () => {
    fc.assert(
      fc.property(graph, edge, input, (g, extra, q) => {
        const before = compile(g);
        const after = compile({ ...g, edges: [...g.edges, extra] });
        if (before === undefined || after === undefined) return;
        if (before.decide({ ...q, scopes: new Set() }).allowed)
          assert.ok(after.decide({ ...q, scopes: new Set() }).allowed, JSON.stringify({ g, extra, q }));
      }),
      { numRuns: 1_500 },
    );
  });
});
