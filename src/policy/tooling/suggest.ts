/**
 * A CallGraph that allows what was observed and nothing more: the starting
 * point for a team adopting baton on a mesh that already runs. Least
 * privilege throughout:
 *
 *   - edges: only caller → callee pairs that were seen;
 *   - routes: only the exact methods and paths seen, grouped so that a rule
 *     never allows a method on a path where it was not seen (with
 *     `generalize`, numeric, UUID and long hex segments become `*`);
 *   - scopes: the scopes every call of a rule carried, as an `and`
 *     expression (omitted when none is common, or the logs predate scopes);
 *   - origins: the origins seen, on every edge of a longer chain;
 *   - user: `required`, `none` or `optional` as users and service
 *     identities were seen; entrypoints: services that received external
 *     tokens, and origins of user chains;
 *   - maxDepth: the longest chain seen; allowCycles only on edges where a
 *     chain came back to a service.
 *
 * Calls a sidecar denied in `enforce` mode did not happen, so they are left
 * out unless asked for (`includeDenied`): a suggestion must not quietly
 * allow what the platform team refused.
 */
import { Document, isScalar, visit } from 'yaml';
import { type CallGraphPolicy, EXTERNAL, HTTP_METHODS, type PolicyMode } from '../language/model.ts';
import type { ObservedCall } from './observed.ts';
import { checkPathPattern, pathPatternCovers } from '../language/paths.ts';
import type { RawAcceptRule, RawCallGraph, RawService } from '../language/schema.ts';
import { isRuleName } from '../language/rule-id.ts';
import { validateCallGraph } from '../language/validate.ts';
import { MAX_SCOPE_EXPRESSION_LENGTH } from '../../core/scope-expression.ts';

export interface SuggestOptions {
  /** metadata.name. */
  readonly name: string;
  /** spec.mode of the suggestion. Default `shadow`: a generated graph is watched before it is enforced. */
  readonly mode?: PolicyMode;
  /** Numeric, UUID and long hex path segments become `*`. Default false: exact paths only. */
  readonly generalize?: boolean;
  /** Also allow calls that were denied in enforce mode. Default false. */
  readonly includeDenied?: boolean;
}

export interface Suggestion {
  readonly document: RawCallGraph;
  /** The calls the suggestion is built from (denials left out unless asked for). */
  readonly calls: readonly ObservedCall[];
  /** What the suggestion could not express; each one means some observed call is not allowed by it. */
  readonly warnings: readonly string[];
}

const METHODS: ReadonlySet<string> = new Set(HTTP_METHODS);
// RFC 6749 §3.3 scope-token, minus the parentheses a scope expression reserves.
const SCOPE_TOKEN = /^[\x21\x23-\x27\x2a-\x5b\x5d-\x7e]+$/;
const KEYWORDS: ReadonlySet<string> = new Set(['and', 'or', 'not']);
const NUMERIC = /^\d+$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const LONG_HEX = /^(?=.*\d)[0-9a-f]{16,}$/i;

interface PathUse {
  readonly methods: Set<string>;
  readonly origins: Set<string>;
  readonly users: Set<boolean>;
  /** Undefined once a call without scopes is seen: nothing can be required then. */
  scopes: Set<string> | undefined;
}

interface EdgeUse {
  readonly from: string;
  readonly to: string;
  readonly paths: Map<string, PathUse>;
  cyclic: boolean;
}

export function suggestCallGraph(observed: readonly ObservedCall[], options: SuggestOptions): Suggestion {
  const warnings: string[] = [];
  const calls = observed.filter((call) => options.includeDenied === true || call.decision !== 'deny');
  const services = new Set<string>();
  const entrypoints = new Set<string>();
  const edges = new Map<string, EdgeUse>();
  let maxDepth = 1;

  for (const call of calls) {
    const user = call.user ?? true;
    for (const name of [...call.chain, call.to]) services.add(name);
    if (call.chain.length === 0) entrypoints.add(call.to);
    else if (user) entrypoints.add(call.chain[0] as string);
    maxDepth = Math.max(maxDepth, call.chain.length);
    if (call.method !== undefined && !METHODS.has(call.method)) {
      warnings.push(
        `${call.from} → ${call.to}: method '${call.method.slice(0, 16)}' is not one a policy can name; that call is not allowed`,
      );
      continue;
    }
    // A literal `*` segment in a request path would read back as a wildcard: never widen by accident.
    if (call.path !== undefined && (call.path.includes('*') || checkPathPattern(call.path) !== undefined)) {
      warnings.push(
        `${call.from} → ${call.to}: path '${call.path.slice(0, 80)}' cannot be written as a path pattern; that call is not allowed`,
      );
      continue;
    }
    const edge = edgeOf(edges, call.from, call.to);
    const path = call.path === undefined ? '/**' : options.generalize === true ? generalizePath(call.path) : call.path;
    let use = edge.paths.get(path);
    if (use === undefined)
      edge.paths.set(
        path,
        (use = {
          methods: new Set(),
          origins: new Set(),
          users: new Set(),
          scopes: call.scopes === undefined ? undefined : new Set(call.scopes),
        }),
      );
    if (call.method !== undefined) use.methods.add(call.method);
    if (call.chain.length > 0) use.origins.add(call.chain[0] as string);
    use.users.add(user);
    use.scopes = use.scopes === undefined || call.scopes === undefined ? undefined : intersect(use.scopes, call.scopes);
    markCycles(edges, call);
  }
  for (const edge of edges.values()) {
    if (edge.paths.size === 0 && edge.from !== EXTERNAL) {
      warnings.push(
        `${edge.from} → ${edge.to} is a hop of observed chains, but no call on it is in the logs (add the logs of ${edge.to}'s sidecar); chains through it are not allowed`,
      );
    }
    if (options.generalize === true) foldCoveredPaths(edge);
  }

  for (const name of entrypoints) {
    if ((edges.get(`${EXTERNAL}\u0000${name}`)?.paths.size ?? 0) > 0) continue;
    // DESIGN.md: an entrypoint without `from: external` rules takes external tokens on every route.
    warnings.push(
      `${name} must be an entrypoint (user chains start there) but no external call to it is in the logs: it accepts external tokens on every route until you add 'from: external' rules`,
    );
  }
  const rawServices: Record<string, RawService> = {};
  for (const name of [...services].sort()) {
    const service: RawService = {};
    if (entrypoints.has(name)) service.entrypoint = true;
    const accepts = [...edges.values()]
      .filter((edge) => edge.to === name && edge.paths.size > 0)
      .sort((a, b) => compare(a.from, b.from))
      .flatMap((edge) => rulesFor(edge, warnings));
    if (accepts.length > 0) service.accepts = accepts;
    rawServices[name] = service;
  }
  const document: RawCallGraph = {
    apiVersion: 'baton.dev/v1alpha1',
    kind: 'CallGraph',
    metadata: { name: options.name },
    spec: { maxDepth, mode: options.mode ?? 'shadow', services: rawServices },
  };
  return { document, calls, warnings: [...new Set(warnings)] };
}

function edgeOf(edges: Map<string, EdgeUse>, from: string, to: string): EdgeUse {
  const key = `${from}\u0000${to}`;
  let edge = edges.get(key);
  if (edge === undefined) edges.set(key, (edge = { from, to, paths: new Map(), cyclic: false }));
  return edge;
}

/** Every hop of the chain must be an edge; a hop back to a service already in the chain needs allowCycles. */
function markCycles(edges: Map<string, EdgeUse>, call: ObservedCall): void {
  const hops = [...call.chain, call.to];
  const seen = new Set<string>();
  hops.forEach((service, i) => {
    if (i > 0) {
      const edge = edgeOf(edges, hops[i - 1] as string, service);
      if (seen.has(service)) edge.cyclic = true;
    }
    seen.add(service);
  });
}

/** One rule per distinct (methods, origins, user, scopes) on the edge, each with exactly the paths seen that way. */
function rulesFor(edge: EdgeUse, warnings: string[]): RawAcceptRule[] {
  const groups = new Map<string, { rule: Omit<RawAcceptRule, 'paths'>; paths: string[] }>();
  for (const [path, use] of [...edge.paths.entries()].sort(([a], [b]) => compare(a, b))) {
    const rule: Omit<RawAcceptRule, 'paths'> = { from: edge.from };
    if (edge.from !== EXTERNAL && use.origins.size > 0) rule.origins = [...use.origins].sort();
    if (use.methods.size > 0) rule.methods = HTTP_METHODS.filter((m) => use.methods.has(m));
    const scopes = scopeExpression(use.scopes, `${edge.from} → ${edge.to}`, warnings);
    if (scopes !== undefined) rule.scopes = scopes;
    if (!use.users.has(true)) rule.user = 'none';
    else if (use.users.has(false)) rule.user = 'optional';
    if (edge.cyclic) rule.allowCycles = true;
    const key = JSON.stringify(rule);
    const group = groups.get(key);
    if (group === undefined) groups.set(key, { rule, paths: [path] });
    else group.paths.push(path);
  }
  return [...groups.values()].map(({ rule, paths }, index) => {
    const name = index === 0 ? `from-${edge.from}` : `from-${edge.from}-${index + 1}`;
    const { from, origins, methods, ...rest } = rule;
    // `/**` stands for "path not logged": no paths key then, rather than a pattern nobody wrote.
    const routed = paths.includes('/**') ? {} : { paths };
    // Keys in the order people write them: who, from where, which route, then constraints.
    return {
      ...(isRuleName(name) ? { name } : {}),
      from,
      ...(origins === undefined ? {} : { origins }),
      ...(methods === undefined ? {} : { methods }),
      ...routed,
      ...rest,
    };
  });
}

function scopeExpression(
  scopes: ReadonlySet<string> | undefined,
  edge: string,
  warnings: string[],
): string | undefined {
  if (scopes === undefined || scopes.size === 0) return undefined;
  const usable = [...scopes].filter((s) => SCOPE_TOKEN.test(s) && !KEYWORDS.has(s)).sort();
  const dropped = scopes.size - usable.length;
  if (dropped > 0)
    warnings.push(
      `${edge}: ${dropped} common scope${dropped === 1 ? '' : 's'} cannot be named in a scope expression and ${dropped === 1 ? 'is' : 'are'} not required`,
    );
  const expression = usable.join(' and ');
  if (expression.length > MAX_SCOPE_EXPRESSION_LENGTH) {
    warnings.push(`${edge}: the common scopes are too many for one expression; no scope is required`);
    return undefined;
  }
  return expression === '' ? undefined : expression;
}

/** `/orders/123/items/9f1c…` → `/orders/*\/items/*` with `generalize`. */
export function generalizePath(path: string): string {
  return path
    .split('/')
    .map((segment) => (NUMERIC.test(segment) || UUID.test(segment) || LONG_HEX.test(segment) ? '*' : segment))
    .join('/');
}

/** A literal path a generalised pattern on the same edge already matches joins that pattern, so no rule shadows another. */
function foldCoveredPaths(edge: EdgeUse): void {
  const patterns = [...edge.paths.keys()].filter((path) => path.includes('*'));
  for (const [path, use] of [...edge.paths.entries()]) {
    if (path.includes('*')) continue;
    const cover = patterns.find((pattern) => pathPatternCovers(pattern, path));
    if (cover === undefined) continue;
    const into = edge.paths.get(cover) as PathUse;
    for (const method of use.methods) into.methods.add(method);
    for (const origin of use.origins) into.origins.add(origin);
    for (const user of use.users) into.users.add(user);
    into.scopes =
      into.scopes === undefined || use.scopes === undefined ? undefined : intersect(into.scopes, use.scopes);
    edge.paths.delete(path);
  }
}

function intersect(a: ReadonlySet<string>, b: Iterable<string>): Set<string> {
  const out = new Set<string>();
  for (const item of b) if (a.has(item)) out.add(item);
  return out;
}

/** The suggestion as YAML, with short lists in flow style and a header saying where it came from. */
export function formatSuggestion(suggestion: Suggestion, header: readonly string[] = []): string {
  const doc = new Document(suggestion.document);
  visit(doc, {
    Seq(_, seq) {
      if (seq.items.length <= 8 && seq.items.every((item) => isScalar(item))) seq.flow = true;
    },
  });
  const comment = [
    ...header,
    `Suggested by 'baton policy suggest' from ${suggestion.calls.length} observed call${suggestion.calls.length === 1 ? '' : 's'}: least privilege,`,
    'only the edges, methods, paths and scopes seen. Review it, run it in shadow mode, then enforce.',
    ...suggestion.warnings.map((warning) => `WARNING: ${warning}`),
  ];
  doc.commentBefore = comment.map((line) => ` ${line}`).join('\n');
  return doc.toString({ lineWidth: 0 });
}

/** The suggestion as a validated policy, e.g. to draw it (throws nothing: problems are returned). */
export function suggestionPolicy(suggestion: Suggestion): { policy: CallGraphPolicy | undefined; problems: string[] } {
  const location = { file: '<suggestion>', line: 1, column: 1 };
  const result = validateCallGraph(structuredClone(suggestion.document), { at: () => location });
  return { policy: result.policy, problems: result.problems.map((p) => `${p.severity} ${p.code} ${p.message}`) };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
