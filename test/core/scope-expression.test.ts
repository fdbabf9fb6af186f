import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  formatScopeExpression,
  MAX_SCOPE_EXPRESSION_NESTING,
  parseScopeExpression,
  ScopeExpressionError,
  type ScopeExpressionNode,
} from '../../src/core/scope-expression.ts';

const has = (source: string, ...scopes: string[]): boolean => parseScopeExpression(source).evaluate(new Set(scopes));

function rejects(source: string, reason: string, offset: number): void {
  assert.throws(
    () => parseScopeExpression(source),
    (error: unknown) =>
      error instanceof ScopeExpressionError &&
      error.code === 'BATON_SCOPE_EXPRESSION_INVALID' &&
      error.reason === reason &&
      error.offset === offset,
  );
}

describe('scope expressions', () => {
  it('holds for a single scope when the token has it', () => {
    assert.equal(has('orders:read', 'orders:read'), true);
    assert.equal(has('orders:read', 'orders:write'), false);
  });

  it('binds and tighter than or', () => {
    assert.equal(has('a or b and c', 'a'), true);
    assert.equal(has('a or b and c', 'b'), false);
    assert.equal(has('(a or b) and c', 'a'), false);
  });

  it('binds not tighter than and', () => {
    assert.equal(has('not a and b', 'b'), true);
    assert.equal(has('not a and b', 'a', 'b'), false);
    assert.equal(has('not (a and b)', 'a'), true);
  });

  it('evaluates the example from the design', () => {
    const expression = parseScopeExpression('payments:charge and (fido or otp)');
    assert.equal(expression.evaluate(new Set(['payments:charge', 'otp'])), true);
    assert.equal(expression.evaluate(new Set(['payments:charge'])), false);
    assert.deepEqual([...expression.scopes].sort(), ['fido', 'otp', 'payments:charge']);
  });

  it('treats uppercase keywords as scopes, since keywords are case-sensitive', () => {
    assert.deepEqual([...parseScopeExpression('AND').scopes], ['AND']);
    rejects('a AND b', 'unexpected-token', 2);
  });

  it('accepts every RFC 6749 §3.3 scope character except parentheses', () => {
    const expression = parseScopeExpression('https://api.example/x!#$%&*+,-./:;<=>?@[]^_`{|}~');
    assert.equal(expression.scopes.size, 1);
  });

  it('refuses a quote or backslash, which §3.3 excludes, with its offset', () => {
    rejects('a and "b"', 'bad-character', 6);
    rejects('a\\b', 'bad-character', 1);
  });

  it('names the offset of an operator where a scope was expected', () => {
    rejects('orders:read or and', 'unexpected-token', 15);
  });

  it('reports an unexpected end at the end of the source', () => {
    rejects('a and', 'unexpected-end', 5);
    rejects('(a or b', 'unexpected-end', 7);
  });

  it('refuses two scopes with no operator between them', () => {
    rejects('a b', 'unexpected-token', 2);
  });

  it('refuses an unbalanced closing parenthesis', () => {
    rejects('a)', 'unexpected-token', 1);
  });

  it('refuses an empty or blank expression', () => {
    rejects('', 'empty', 0);
    rejects('  \n', 'empty', 0);
  });

  it('bounds nesting so a hostile expression cannot exhaust the stack', () => {
    const deep = '('.repeat(10_000) + 'a' + ')'.repeat(10_000);
    rejects(deep.slice(0, 4000), 'too-complex', MAX_SCOPE_EXPRESSION_NESTING);
    rejects(deep, 'too-complex', 4096);
    rejects('not '.repeat(40) + 'a', 'too-complex', 4 * MAX_SCOPE_EXPRESSION_NESTING);
  });
});

const scopeName = fc.constantFrom('a', 'b', 'c', 'orders:read', 'payments:charge', 'urn:x:y', 'AND', 'Or');
const expressionTree: fc.Arbitrary<ScopeExpressionNode> = fc.letrec<{ node: ScopeExpressionNode }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scopeName.map((scope) => ({ type: 'scope' as const, scope })),
    tie('node').map((operand) => ({ type: 'not' as const, operand })),
    fc
      .tuple(fc.constantFrom('and' as const, 'or' as const), fc.array(tie('node'), { minLength: 2, maxLength: 3 }))
      .map(([type, operands]) => ({ type, operands })),
  ),
})).node;

function reference(node: ScopeExpressionNode, scopes: ReadonlySet<string>): boolean {
  switch (node.type) {
    case 'scope':
      return scopes.has(node.scope);
    case 'not':
      return !reference(node.operand, scopes);
    case 'and':
      return node.operands.every((o) => reference(o, scopes));
    case 'or':
      return node.operands.some((o) => reference(o, scopes));
  }
}

function depth(node: ScopeExpressionNode): number {
  if (node.type === 'scope') return 0;
  if (node.type === 'not') return 1 + depth(node.operand);
  return 1 + Math.max(...node.operands.map(depth));
}

describe('scope expressions (properties)', () => {
  const shallow = expressionTree.filter((tree) => depth(tree) < MAX_SCOPE_EXPRESSION_NESTING / 2);

  it('prints an expression that parses back to the same meaning and the same text', () => {
    fc.assert(
      fc.property(
        shallow,
        fc.subarray(['a', 'b', 'c', 'orders:read', 'payments:charge', 'urn:x:y', 'AND', 'Or']),
        (tree, held) => {
          const printed = formatScopeExpression(tree);
          const parsed = parseScopeExpression(printed);
          assert.deepEqual(parsed.ast, tree);
          assert.equal(formatScopeExpression(parsed.ast), printed);
          assert.equal(parsed.evaluate(new Set(held)), reference(tree, new Set(held)));
        },
      ),
    );
  });

  it('evaluates as a reference evaluator does', () => {
    fc.assert(
      fc.property(
        shallow,
        fc.subarray(['a', 'b', 'c', 'orders:read', 'payments:charge', 'urn:x:y', 'AND', 'Or']),
        (tree, held) => {
          const scopes = new Set(held);
          assert.equal(parseScopeExpression(formatScopeExpression(tree)).evaluate(scopes), reference(tree, scopes));
        },
      ),
    );
  });

  it('never throws anything but ScopeExpressionError on arbitrary input', () => {
    const pieces = fc.constantFrom('a', 'b', ' ', '(', ')', 'and', 'or', 'not', '"', '\\', '\u00e9', '\t', '');
    const input = fc.oneof(
      fc.string({ maxLength: 80 }),
      fc.array(pieces, { maxLength: 40 }).map((parts) => parts.join(' ')),
      fc.array(pieces, { maxLength: 40 }).map((parts) => parts.join('')),
    );
    fc.assert(
      fc.property(input, (source) => {
        try {
          const expression = parseScopeExpression(source);
          assert.equal(typeof expression.evaluate(new Set(['a'])), 'boolean');
        } catch (error) {
          assert.ok(error instanceof ScopeExpressionError, String(error));
          assert.ok(error.offset >= 0 && error.offset <= Math.max(source.length, 4096));
        }
      }),
      { numRuns: 500 },
    );
  });
});
