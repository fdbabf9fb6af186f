/**
 * Boolean expressions over OAuth scope tokens, as call-graph rules write
 * them: `payments:charge and (fido or otp)`. `or` binds loosest, then `and`,
 * then `not`; parentheses group. A scope token is RFC 6749 §3.3's
 * `scope-token` (NQCHAR: %x21 / %x23-5B / %x5D-7E) minus `(` and `)`, which
 * the grammar needs. Keywords are lowercase only, so `AND` is a scope.
 *
 *   expr    = or
 *   or      = and *( "or" and )
 *   and     = unary *( "and" unary )
 *   unary   = "not" unary / primary
 *   primary = scope-token / "(" or ")"
 *
 * Parsed once (at policy compile) into a tree of closures; evaluation is a
 * few Set lookups and allocates nothing.
 */
import { BatonError } from './errors.ts';

/** What is wrong with an expression; its author fixes it the same way whichever it is. */
export type ScopeExpressionFailure = 'empty' | 'bad-character' | 'unexpected-token' | 'unexpected-end' | 'too-complex';

/** BATON_SCOPE_EXPRESSION_INVALID, the failure as its reason, at an offset of the source. */
export class ScopeExpressionError extends BatonError {
  declare readonly reason: ScopeExpressionFailure;
  /** 0-based offset into the source where the problem was found. */
  readonly offset: number;
  constructor(reason: ScopeExpressionFailure, message: string, offset: number) {
    super('BATON_SCOPE_EXPRESSION_INVALID', message, { reason });
    this.name = 'ScopeExpressionError';
    this.offset = offset;
  }
}

export type ScopeExpressionNode =
  | { readonly type: 'scope'; readonly scope: string }
  | { readonly type: 'not'; readonly operand: ScopeExpressionNode }
  | { readonly type: 'and' | 'or'; readonly operands: readonly ScopeExpressionNode[] };

export interface ScopeExpression {
  readonly source: string;
  /** Every scope token the expression names, negated ones included. */
  readonly scopes: ReadonlySet<string>;
  readonly ast: ScopeExpressionNode;
  evaluate(scopes: ReadonlySet<string>): boolean;
}

// Bounds that keep a hostile expression (it can arrive from the policy server) from costing stack or time.
export const MAX_SCOPE_EXPRESSION_LENGTH = 4096;
export const MAX_SCOPE_EXPRESSION_NESTING = 32;

const KEYWORDS = new Set(['and', 'or', 'not']);

interface Token {
  readonly kind: 'scope' | 'and' | 'or' | 'not' | '(' | ')';
  readonly text: string;
  readonly offset: number;
}

function isWhitespace(code: number): boolean {
  return code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d;
}

// RFC 6749 §3.3 NQCHAR, without the parentheses the grammar reserves.
function isScopeChar(code: number): boolean {
  return (
    code === 0x21 || (code >= 0x23 && code <= 0x5b && code !== 0x28 && code !== 0x29) || (code >= 0x5d && code <= 0x7e)
  );
}

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const code = source.charCodeAt(i);
    if (isWhitespace(code)) {
      i++;
    } else if (code === 0x28 || code === 0x29) {
      tokens.push({ kind: code === 0x28 ? '(' : ')', text: source[i] as string, offset: i });
      i++;
    } else if (isScopeChar(code)) {
      const start = i;
      while (i < source.length && isScopeChar(source.charCodeAt(i))) i++;
      const text = source.slice(start, i);
      tokens.push({ kind: KEYWORDS.has(text) ? (text as 'and' | 'or' | 'not') : 'scope', text, offset: start });
    } else {
      throw new ScopeExpressionError(
        'bad-character',
        `expected a scope character (RFC 6749 §3.3), an operator or a parenthesis at offset ${i}, got ${describeChar(code)}`,
        i,
      );
    }
  }
  return tokens;
}

function describeChar(code: number): string {
  return code >= 0x21 && code <= 0x7e
    ? `'${String.fromCharCode(code)}'`
    : `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
}

class Parser {
  private readonly tokens: Token[];
  private readonly end: number;
  private position = 0;
  private depth = 0;

  constructor(tokens: Token[], end: number) {
    this.tokens = tokens;
    this.end = end;
  }

  parse(): ScopeExpressionNode {
    const node = this.or();
    const extra = this.tokens[this.position];
    if (extra !== undefined) {
      throw new ScopeExpressionError(
        'unexpected-token',
        `expected 'and', 'or' or the end of the expression at offset ${extra.offset}, got '${extra.text}'`,
        extra.offset,
      );
    }
    return node;
  }

  private or(): ScopeExpressionNode {
    const operands = [this.and()];
    while (this.peek()?.kind === 'or') {
      this.position++;
      operands.push(this.and());
    }
    return operands.length === 1 ? (operands[0] as ScopeExpressionNode) : { type: 'or', operands };
  }

  private and(): ScopeExpressionNode {
    const operands = [this.unary()];
    while (this.peek()?.kind === 'and') {
      this.position++;
      operands.push(this.unary());
    }
    return operands.length === 1 ? (operands[0] as ScopeExpressionNode) : { type: 'and', operands };
  }

  private unary(): ScopeExpressionNode {
    const token = this.peek();
    if (token?.kind === 'not') {
      this.position++;
      this.enter(token);
      const operand = this.unary();
      this.depth--;
      return { type: 'not', operand };
    }
    return this.primary();
  }

  private primary(): ScopeExpressionNode {
    const token = this.peek();
    if (token === undefined) {
      throw new ScopeExpressionError(
        'unexpected-end',
        `expected a scope or '(' at offset ${this.end}, got the end of the expression`,
        this.end,
      );
    }
    if (token.kind === 'scope') {
      this.position++;
      return { type: 'scope', scope: token.text };
    }
    if (token.kind === '(') {
      this.position++;
      this.enter(token);
      const inner = this.or();
      this.depth--;
      const close = this.peek();
      if (close?.kind !== ')') {
        const offset = close?.offset ?? this.end;
        throw new ScopeExpressionError(
          close === undefined ? 'unexpected-end' : 'unexpected-token',
          `expected ')' to close the '(' at offset ${token.offset}, at offset ${offset}, got ${close === undefined ? 'the end of the expression' : `'${close.text}'`}`,
          offset,
        );
      }
      this.position++;
      return inner;
    }
    throw new ScopeExpressionError(
      'unexpected-token',
      `expected a scope or '(' at offset ${token.offset}, got '${token.text}'`,
      token.offset,
    );
  }

  private enter(token: Token): void {
    if (++this.depth > MAX_SCOPE_EXPRESSION_NESTING) {
      throw new ScopeExpressionError(
        'too-complex',
        `expected at most ${MAX_SCOPE_EXPRESSION_NESTING} nested 'not' or parentheses, got more at offset ${token.offset}`,
        token.offset,
      );
    }
  }

  private peek(): Token | undefined {
    return this.tokens[this.position];
  }
}

type Evaluator = (scopes: ReadonlySet<string>) => boolean;

function compileNode(node: ScopeExpressionNode): Evaluator {
  switch (node.type) {
    case 'scope': {
      const scope = node.scope;
      return (scopes) => scopes.has(scope);
    }
    case 'not': {
      const operand = compileNode(node.operand);
      return (scopes) => !operand(scopes);
    }
    case 'and': {
      const operands = node.operands.map(compileNode);
      return (scopes) => {
        for (const operand of operands) if (!operand(scopes)) return false;
        return true;
      };
    }
    case 'or': {
      const operands = node.operands.map(compileNode);
      return (scopes) => {
        for (const operand of operands) if (operand(scopes)) return true;
        return false;
      };
    }
  }
}

function collectScopes(node: ScopeExpressionNode, into: Set<string>): Set<string> {
  if (node.type === 'scope') into.add(node.scope);
  else if (node.type === 'not') collectScopes(node.operand, into);
  else for (const operand of node.operands) collectScopes(operand, into);
  return into;
}

/** Parses and compiles a scope expression; throws `ScopeExpressionError` with the offending offset. */
export function parseScopeExpression(source: string): ScopeExpression {
  if (source.length > MAX_SCOPE_EXPRESSION_LENGTH) {
    throw new ScopeExpressionError(
      'too-complex',
      `expected at most ${MAX_SCOPE_EXPRESSION_LENGTH} characters, got ${source.length}`,
      MAX_SCOPE_EXPRESSION_LENGTH,
    );
  }
  const tokens = tokenize(source);
  if (tokens.length === 0) {
    throw new ScopeExpressionError('empty', 'expected a scope expression, got an empty string', 0);
  }
  const ast = new Parser(tokens, source.length).parse();
  const evaluate = compileNode(ast);
  return Object.freeze({ source, scopes: collectScopes(ast, new Set()), ast, evaluate });
}

/** Prints an expression with the fewest parentheses that keep its meaning. */
export function formatScopeExpression(node: ScopeExpressionNode): string {
  switch (node.type) {
    case 'scope':
      return node.scope;
    case 'not':
      return `not ${node.operand.type === 'scope' || node.operand.type === 'not' ? formatScopeExpression(node.operand) : `(${formatScopeExpression(node.operand)})`}`;
    case 'and':
      return node.operands
        .map((o) => (o.type === 'or' || o.type === 'and' ? `(${formatScopeExpression(o)})` : formatScopeExpression(o)))
        .join(' and ');
    case 'or':
      return node.operands
        .map((o) => (o.type === 'or' ? `(${formatScopeExpression(o)})` : formatScopeExpression(o)))
        .join(' or ');
  }
}
