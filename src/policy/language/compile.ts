/**
 * Compiles a validated policy into the immutable form every part decides
 * against (STYLE rule 6: precompute at load). Per callee, a map from caller
 * to its rules, so a decision is a Map lookup per hop; path patterns and
 * scope expressions compiled once; the digest computed once.
 */
import { createHash } from 'node:crypto';
import { parseScopeExpression } from '../../core/scope-expression.ts';
import type { CompiledPolicy, Decision, DecisionInput } from './decision.ts';
import { type CompiledGraph, type CompiledRule, type CompiledService, evaluate } from './evaluate.ts';
import type { AcceptRule, CallGraphPolicy } from './model.ts';
import { policyToJSON } from './parse.ts';
import { compilePathPatterns } from './paths.ts';
import { edgeRuleId, entrypointRuleId } from './rule-id.ts';

export function compilePolicy(policy: CallGraphPolicy): CompiledPolicy {
  const services = new Map<string, CompiledService>();
  // caller → callees, for the reachable-scope walk behind usableScopes.
  const callees = new Map<string, Set<string>>();
  for (const service of policy.spec.services.values()) {
    const byCaller = new Map<string, CompiledRule[]>();
    for (const rule of service.accepts) {
      let rules = byCaller.get(rule.from);
      if (rules === undefined) byCaller.set(rule.from, (rules = []));
      rules.push(compileRule(rule));
      let targets = callees.get(rule.from);
      if (targets === undefined) callees.set(rule.from, (targets = new Set()));
      targets.add(service.name);
    }
    services.set(
      service.name,
      Object.freeze({
        name: service.name,
        entrypointRule: entrypointRuleId(service.name),
        edgeRule: edgeRuleId(service.name),
        entrypoint: service.entrypoint,
        mode: service.mode,
        byCaller,
      }),
    );
  }
  const graph: CompiledGraph = Object.freeze({ maxDepth: policy.spec.maxDepth, mode: policy.spec.mode, services });
  const digest = createHash('sha256')
    .update(canonicalJSON(policyToJSON(policy)))
    .digest('base64url');

  const edgeScopes = (caller: string, target: string): ReadonlySet<string> => {
    const scopes = new Set<string>();
    for (const rule of services.get(target)?.byCaller.get(caller) ?? [])
      for (const scope of rule.scopes?.scopes ?? []) scopes.add(scope);
    return scopes;
  };
  const downstreamMemo = new Map<string, ReadonlySet<string>>();
  /** Scope tokens on every edge reachable from `start`; walked once per service, then remembered. */
  const downstreamScopes = (start: string): ReadonlySet<string> => {
    const memo = downstreamMemo.get(start);
    if (memo !== undefined) return memo;
    const scopes = new Set<string>();
    const visited = new Set<string>([start]);
    const queue = [start];
    for (let from = queue.pop(); from !== undefined; from = queue.pop()) {
      for (const to of callees.get(from) ?? []) {
        for (const scope of edgeScopes(from, to)) scopes.add(scope);
        if (!visited.has(to)) {
          visited.add(to);
          queue.push(to);
        }
      }
    }
    downstreamMemo.set(start, scopes);
    return scopes;
  };
  const usableMemo = new Map<string, ReadonlySet<string>>();

  return Object.freeze({
    name: policy.metadata.name,
    maxDepth: policy.spec.maxDepth,
    digest,
    hasService: (name: string): boolean => services.has(name),
    isEntrypoint: (name: string): boolean => services.get(name)?.entrypoint === true,
    decide: (input: DecisionInput): Decision => evaluate(graph, input),
    usableScopes(caller: string, target: string): ReadonlySet<string> | undefined {
      if (services.get(target)?.byCaller.get(caller) === undefined) return undefined;
      const key = `${caller}\u0000${target}`;
      let usable = usableMemo.get(key);
      if (usable === undefined) {
        usable = new Set([...edgeScopes(caller, target), ...downstreamScopes(target)]);
        usableMemo.set(key, usable);
      }
      return usable;
    },
  });
}

function compileRule(rule: AcceptRule): CompiledRule {
  return Object.freeze({
    id: rule.id,
    from: rule.from,
    origins: rule.origins === undefined ? undefined : new Set<string>(rule.origins),
    methods: rule.methods === undefined ? undefined : new Set<string>(rule.methods),
    matchesPath: rule.paths === undefined ? undefined : compilePathPatterns(rule.paths),
    scopes: rule.scopes === undefined ? undefined : parseScopeExpression(rule.scopes),
    acr: rule.acr,
    issuers: rule.issuers === undefined ? undefined : new Set<string>(rule.issuers),
    user: rule.user,
    allowCycles: rule.allowCycles,
    mode: rule.mode,
    paths: rule.paths,
  });
}

/** JSON with object keys sorted at every level, so equal policies hash equal. */
export function canonicalJSON(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJSON).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJSON(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
