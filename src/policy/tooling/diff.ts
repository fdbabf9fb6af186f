/**
 * What changed between two call-graph policies, for the reviewer of a
 * policy pull request: services, entrypoints, depth, edges, and the rules
 * on edges that exist in both. Rules are matched by name when they have
 * one and otherwise by their order among the rules of the same edge, so
 * inserting a rule elsewhere does not show every later rule as changed.
 */
import type { AcceptRule, CallGraphPolicy } from '../language/model.ts';

export const RULE_FIELDS = [
  'methods',
  'paths',
  'scopes',
  'acr',
  'issuers',
  'user',
  'origins',
  'mode',
  'allowCycles',
] as const;
export type RuleField = (typeof RULE_FIELDS)[number];

export interface RuleSummary {
  readonly id: string;
  readonly from: string;
  readonly to: string;
  readonly methods: readonly string[] | undefined;
  readonly paths: readonly string[] | undefined;
  readonly scopes: string | undefined;
}

export interface EdgeChange {
  readonly from: string;
  readonly to: string;
  readonly rules: readonly RuleSummary[];
}

export interface FieldChange {
  readonly field: RuleField;
  readonly before: unknown;
  readonly after: unknown;
}

export interface RuleChange {
  readonly id: string;
  readonly previousId: string;
  readonly from: string;
  readonly to: string;
  readonly changes: readonly FieldChange[];
}

export interface ValueChange<T> {
  readonly before: T;
  readonly after: T;
}

export interface PolicyDiff {
  readonly equal: boolean;
  readonly name: ValueChange<string> | undefined;
  readonly maxDepth: ValueChange<number> | undefined;
  readonly mode: ValueChange<string> | undefined;
  readonly services: { readonly added: readonly string[]; readonly removed: readonly string[] };
  readonly serviceModes: ReadonlyArray<{ readonly service: string } & ValueChange<string>>;
  readonly entrypoints: { readonly added: readonly string[]; readonly removed: readonly string[] };
  readonly edges: { readonly added: readonly EdgeChange[]; readonly removed: readonly EdgeChange[] };
  readonly rules: {
    readonly added: readonly RuleSummary[];
    readonly removed: readonly RuleSummary[];
    readonly changed: readonly RuleChange[];
  };
}

export function diffPolicies(before: CallGraphPolicy, after: CallGraphPolicy): PolicyDiff {
  const oldServices = [...before.spec.services.keys()].sort();
  const newServices = [...after.spec.services.keys()].sort();
  const oldEntrypoints = oldServices.filter((name) => before.spec.services.get(name)?.entrypoint === true);
  const newEntrypoints = newServices.filter((name) => after.spec.services.get(name)?.entrypoint === true);
  const serviceModes = oldServices.flatMap((name) => {
    const was = before.spec.services.get(name)?.mode;
    const now = after.spec.services.get(name)?.mode;
    return was !== undefined && now !== undefined && was !== now ? [{ service: name, before: was, after: now }] : [];
  });

  const oldEdges = edgesOf(before);
  const newEdges = edgesOf(after);
  const edgesAdded: EdgeChange[] = [];
  const edgesRemoved: EdgeChange[] = [];
  const rulesAdded: RuleSummary[] = [];
  const rulesRemoved: RuleSummary[] = [];
  const rulesChanged: RuleChange[] = [];
  for (const [key, edge] of newEdges) {
    if (!oldEdges.has(key)) edgesAdded.push(edgeChange(edge));
  }
  for (const [key, rules] of oldEdges) {
    const current = newEdges.get(key);
    if (current === undefined) {
      edgesRemoved.push(edgeChange(rules));
      continue;
    }
    const { matched, added, removed } = matchRules(rules.rules, current.rules);
    rulesAdded.push(...added.map((rule) => summarise(rule, current.to)));
    rulesRemoved.push(...removed.map((rule) => summarise(rule, rules.to)));
    for (const [was, now] of matched) {
      const changes = RULE_FIELDS.flatMap((field): FieldChange[] =>
        same(was[field], now[field]) ? [] : [{ field, before: plain(was[field]), after: plain(now[field]) }],
      );
      if (changes.length > 0)
        rulesChanged.push({ id: now.id, previousId: was.id, from: now.from, to: current.to, changes });
    }
  }

  const diff = {
    name:
      before.metadata.name === after.metadata.name
        ? undefined
        : { before: before.metadata.name, after: after.metadata.name },
    maxDepth:
      before.spec.maxDepth === after.spec.maxDepth
        ? undefined
        : { before: before.spec.maxDepth, after: after.spec.maxDepth },
    mode: before.spec.mode === after.spec.mode ? undefined : { before: before.spec.mode, after: after.spec.mode },
    services: { added: minus(newServices, oldServices), removed: minus(oldServices, newServices) },
    serviceModes,
    entrypoints: { added: minus(newEntrypoints, oldEntrypoints), removed: minus(oldEntrypoints, newEntrypoints) },
    edges: { added: edgesAdded, removed: edgesRemoved },
    rules: { added: rulesAdded, removed: rulesRemoved, changed: rulesChanged },
  };
  const equal =
    diff.name === undefined &&
    diff.maxDepth === undefined &&
    diff.mode === undefined &&
    serviceModes.length === 0 &&
    [
      diff.services.added,
      diff.services.removed,
      diff.entrypoints.added,
      diff.entrypoints.removed,
      edgesAdded,
      edgesRemoved,
      rulesAdded,
      rulesRemoved,
      rulesChanged,
    ].every((list) => list.length === 0);
  return { equal, ...diff };
}

interface Edge {
  readonly from: string;
  readonly to: string;
  readonly rules: AcceptRule[];
}

/** `from → to` → the rules of that edge, in policy order. */
function edgesOf(policy: CallGraphPolicy): Map<string, Edge> {
  const edges = new Map<string, Edge>();
  for (const service of policy.spec.services.values()) {
    for (const rule of service.accepts) {
      const key = `${rule.from}\u0000${service.name}`;
      let edge = edges.get(key);
      if (edge === undefined) edges.set(key, (edge = { from: rule.from, to: service.name, rules: [] }));
      edge.rules.push(rule);
    }
  }
  return edges;
}

function matchRules(
  before: readonly AcceptRule[],
  after: readonly AcceptRule[],
): { matched: Array<[AcceptRule, AcceptRule]>; added: AcceptRule[]; removed: AcceptRule[] } {
  const matched: Array<[AcceptRule, AcceptRule]> = [];
  const remainingAfter = [...after];
  const unnamedBefore: AcceptRule[] = [];
  for (const rule of before) {
    const index = rule.name === undefined ? -1 : remainingAfter.findIndex((candidate) => candidate.name === rule.name);
    if (index >= 0) matched.push([rule, remainingAfter.splice(index, 1)[0] as AcceptRule]);
    else unnamedBefore.push(rule);
  }
  // Whatever has no name to match by pairs up in order; a renamed rule is a removal and an addition.
  const unnamedAfter = remainingAfter.filter((rule) => rule.name === undefined);
  const removed = unnamedBefore.filter((rule) => rule.name !== undefined);
  const pairable = unnamedBefore.filter((rule) => rule.name === undefined);
  pairable.forEach((rule, index) => {
    const partner = unnamedAfter[index];
    if (partner === undefined) removed.push(rule);
    else matched.push([rule, partner]);
  });
  const added = [...remainingAfter.filter((rule) => rule.name !== undefined), ...unnamedAfter.slice(pairable.length)];
  return { matched, added, removed };
}

function edgeChange(edge: Edge): EdgeChange {
  return { from: edge.from, to: edge.to, rules: edge.rules.map((rule) => summarise(rule, edge.to)) };
}

function summarise(rule: AcceptRule, to: string): RuleSummary {
  return { id: rule.id, from: rule.from, to, methods: rule.methods, paths: rule.paths, scopes: rule.scopes };
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function plain(value: unknown): unknown {
  return Array.isArray(value) ? [...(value as unknown[])] : value;
}

function minus(a: readonly string[], b: readonly string[]): string[] {
  const drop = new Set(b);
  return a.filter((item) => !drop.has(item));
}
