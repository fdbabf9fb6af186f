/**
 * The call graph actually seen, from the sidecars' audit trail, and how it
 * compares with a declared policy: edges used but not declared (what
 * enforcing would break), declared edges never used (candidates for
 * removal), and rules that only ever shadow-denied. The picture a platform
 * team reviews before flipping a graph from `shadow` to `enforce`.
 */
import type { AuditOutcome } from '../../telemetry/audit-event.ts';
import type { AuditDecision } from './audit-log.ts';
import type { CompiledPolicy } from '../language/decision.ts';
import { isServiceName } from '../../core/service-name.ts';
import { type EdgeStyle, type ExtraEdge, type RenderOptions } from './graph-render.ts';
import { type CallGraphPolicy, EXTERNAL } from '../language/model.ts';

/** One call, once: a call decided at both the caller's and the callee's sidecar is counted once. */
export interface ObservedCall {
  /** The immediate caller, or `external` for a token straight from an identity provider. */
  readonly from: string;
  readonly to: string;
  readonly chain: readonly string[];
  readonly method: string | undefined;
  readonly path: string | undefined;
  readonly decision: AuditOutcome;
  readonly rule: string;
  readonly cause: string | undefined;
  readonly user: boolean | undefined;
  readonly scopes: readonly string[] | undefined;
  /** The token's acr; null when it had none; undefined when the line did not record it. */
  readonly acr: string | null | undefined;
  readonly subjectIssuer: string | undefined;
  readonly time: number | undefined;
}

export type OutcomeCounts = Record<AuditOutcome, number>;

export interface ObservedEdge {
  readonly from: string;
  readonly to: string;
  readonly calls: number;
  /** As the sidecars decided at the time. */
  readonly outcomes: OutcomeCounts;
  readonly methods: readonly string[];
  readonly paths: readonly string[];
  readonly routes: ReadonlyArray<{ readonly method: string; readonly path: string; readonly calls: number }>;
  /** Chains of origin: the callers before this hop, origin first. */
  readonly chains: ReadonlyArray<{ readonly chain: readonly string[]; readonly calls: number }>;
  readonly origins: readonly string[];
}

export interface UndeclaredEdge extends ObservedEdge {
  /** The observed calls on this edge as the compared policy decides them. */
  readonly underPolicy: OutcomeCounts;
}

export interface DeclaredEdge {
  readonly from: string;
  readonly to: string;
  readonly rules: readonly string[];
}

export interface RuleUse {
  readonly rule: string;
  readonly from: string;
  readonly to: string;
  readonly mode: 'enforce' | 'shadow';
  readonly outcomes: OutcomeCounts;
}

export interface PolicyComparison {
  readonly name: string;
  readonly digest: string;
  readonly undeclared: readonly UndeclaredEdge[];
  readonly unusedEdges: readonly DeclaredEdge[];
  /** Rules on used edges that allowed nothing. */
  readonly unusedRules: readonly RuleUse[];
  /** Rules that decided `would_deny` and nothing else: enforcing them breaks all of their traffic. */
  readonly shadowOnly: readonly RuleUse[];
  /** Every rule's decisions over the observed calls. */
  readonly rules: readonly RuleUse[];
}

export interface ObservedReport {
  readonly calls: number;
  readonly firstSeen: string | undefined;
  readonly lastSeen: string | undefined;
  readonly edges: readonly ObservedEdge[];
  readonly policy: PolicyComparison | undefined;
}

const zero = (): OutcomeCounts => ({ allow: 0, deny: 0, would_deny: 0 });

/**
 * Turns decision lines into calls. A call through two sidecars is decided
 * twice (outbound at the caller, inbound at the callee), so per (chain,
 * target, method, path) the calls are the larger of the two counts: the
 * callee's records first (they saw the token actually sent), then the
 * caller's surplus — calls that never arrived, denials first, since a
 * denied call stops at the caller. With only one side's logs, that side
 * counts alone.
 */
export function callsFromDecisions(decisions: readonly AuditDecision[]): ObservedCall[] {
  const groups = new Map<string, { inbound: AuditDecision[]; outbound: AuditDecision[] }>();
  for (const decision of decisions) {
    const key = JSON.stringify([decision.chain, decision.target, decision.method ?? '', decision.path ?? '']);
    let group = groups.get(key);
    if (group === undefined) groups.set(key, (group = { inbound: [], outbound: [] }));
    group[decision.direction].push(decision);
  }
  const calls: ObservedCall[] = [];
  for (const { inbound, outbound } of groups.values()) {
    const surplus = outbound.length - inbound.length;
    const extra =
      surplus <= 0 ? [] : [...outbound].sort((a, b) => rank(a.decision) - rank(b.decision)).slice(0, surplus);
    for (const decision of [...inbound, ...extra]) calls.push(toCall(decision));
  }
  return calls.sort((a, b) => (a.time ?? 0) - (b.time ?? 0));
}

function rank(outcome: AuditOutcome): number {
  return outcome === 'deny' ? 0 : outcome === 'would_deny' ? 1 : 2;
}

function toCall(decision: AuditDecision): ObservedCall {
  const from = decision.chain.length === 0 ? EXTERNAL : (decision.chain[decision.chain.length - 1] as string);
  return {
    from,
    to: decision.target,
    chain: decision.chain,
    method: decision.method,
    path: decision.path,
    decision: decision.decision,
    rule: decision.rule,
    cause: decision.cause,
    user: decision.user,
    scopes: decision.scopes,
    acr: decision.acr,
    subjectIssuer: decision.subjectIssuer,
    time: decision.time,
  };
}

/** The observed call graph, edges sorted by (from, to). */
export function observeEdges(calls: readonly ObservedCall[]): ObservedEdge[] {
  const edges = new Map<string, { from: string; to: string; calls: ObservedCall[] }>();
  for (const call of calls) {
    const key = `${call.from}\u0000${call.to}`;
    let edge = edges.get(key);
    if (edge === undefined) edges.set(key, (edge = { from: call.from, to: call.to, calls: [] }));
    edge.calls.push(call);
  }
  return [...edges.values()]
    .sort((a, b) => compare(a.from, b.from) || compare(a.to, b.to))
    .map((edge) => summarise(edge.from, edge.to, edge.calls));
}

function summarise(from: string, to: string, calls: readonly ObservedCall[]): ObservedEdge {
  const outcomes = zero();
  const routes = new Map<string, { method: string; path: string; calls: number }>();
  const chains = new Map<string, { chain: readonly string[]; calls: number }>();
  for (const call of calls) {
    outcomes[call.decision]++;
    const method = call.method ?? '*';
    const path = call.path ?? '*';
    const routeKey = `${method} ${path}`;
    const route = routes.get(routeKey);
    if (route === undefined) routes.set(routeKey, { method, path, calls: 1 });
    else route.calls++;
    const chainKey = call.chain.join(',');
    const chain = chains.get(chainKey);
    if (chain === undefined) chains.set(chainKey, { chain: call.chain, calls: 1 });
    else chain.calls++;
  }
  const routeList = [...routes.values()].sort(
    (a, b) => b.calls - a.calls || compare(a.path, b.path) || compare(a.method, b.method),
  );
  const chainList = [...chains.values()].sort(
    (a, b) => b.calls - a.calls || compare(a.chain.join(','), b.chain.join(',')),
  );
  return {
    from,
    to,
    calls: calls.length,
    outcomes,
    methods: unique(routeList.map((r) => r.method)),
    paths: unique(routeList.map((r) => r.path)),
    routes: routeList,
    chains: chainList,
    origins: unique(chainList.map((c) => c.chain[0] ?? EXTERNAL)),
  };
}

/**
 * Observed against declared. A call whose line carries the token's scopes
 * and user flag is decided again by `compiled` (the policy under review may
 * not be the one that was running); an older line keeps the outcome and
 * rule the sidecar logged.
 */
export function compareWithPolicy(
  calls: readonly ObservedCall[],
  policy: CallGraphPolicy,
  compiled: CompiledPolicy,
): PolicyComparison {
  const declared = new Map<string, DeclaredEdge>();
  const rules = new Map<string, RuleUse>();
  for (const service of policy.spec.services.values()) {
    for (const rule of service.accepts) {
      const key = `${rule.from}\u0000${service.name}`;
      const edge = declared.get(key);
      declared.set(key, { from: rule.from, to: service.name, rules: [...(edge?.rules ?? []), rule.id] });
      rules.set(rule.id, { rule: rule.id, from: rule.from, to: service.name, mode: rule.mode, outcomes: zero() });
    }
  }
  const undeclaredCalls = new Map<
    string,
    { from: string; to: string; calls: ObservedCall[]; underPolicy: OutcomeCounts }
  >();
  const usedEdges = new Set<string>();
  for (const call of calls) {
    const { outcome, rule } = decideAgain(call, compiled);
    const use = rules.get(rule);
    if (use !== undefined) use.outcomes[outcome]++;
    const key = `${call.from}\u0000${call.to}`;
    usedEdges.add(key);
    // An entrypoint without `from: external` rules accepts every external token: that edge is declared too.
    const implicit =
      call.from === EXTERNAL &&
      isServiceName(call.to) &&
      policy.spec.services.get(call.to)?.entrypoint === true &&
      !declared.has(key);
    if (declared.has(key) || implicit) continue;
    let edge = undeclaredCalls.get(key);
    if (edge === undefined)
      undeclaredCalls.set(key, (edge = { from: call.from, to: call.to, calls: [], underPolicy: zero() }));
    edge.calls.push(call);
    edge.underPolicy[outcome]++;
  }
  const undeclared = [...undeclaredCalls.values()]
    .sort((a, b) => compare(a.from, b.from) || compare(a.to, b.to))
    .map((edge) => ({ ...summarise(edge.from, edge.to, edge.calls), underPolicy: edge.underPolicy }));
  const unusedEdges = [...declared.entries()]
    .filter(([key]) => !usedEdges.has(key))
    .map(([, edge]) => edge)
    .sort((a, b) => compare(a.from, b.from) || compare(a.to, b.to));
  const ruleList = [...rules.values()];
  const unusedRules = ruleList.filter((use) => usedEdges.has(`${use.from}\u0000${use.to}`) && use.outcomes.allow === 0);
  const shadowOnly = ruleList.filter(
    (use) => use.outcomes.would_deny > 0 && use.outcomes.allow === 0 && use.outcomes.deny === 0,
  );
  return {
    name: policy.metadata.name,
    digest: compiled.digest,
    undeclared,
    unusedEdges,
    unusedRules,
    shadowOnly,
    rules: ruleList,
  };
}

function decideAgain(call: ObservedCall, compiled: CompiledPolicy): { outcome: AuditOutcome; rule: string } {
  if (call.scopes === undefined || call.user === undefined) return { outcome: call.decision, rule: call.rule };
  const decision = compiled.decide({
    chain: call.chain,
    target: call.to,
    method: call.method,
    path: call.path,
    scopes: new Set(call.scopes),
    user: call.user,
    subjectIssuer: call.subjectIssuer,
    ...(typeof call.acr === 'string' ? { acr: call.acr } : {}),
  });
  // A line written before acr was logged cannot be re-checked against an acr rule: keep what the sidecar decided.
  if (!decision.allowed && decision.cause === 'acr' && call.acr === undefined)
    return { outcome: call.decision, rule: call.rule };
  return {
    outcome: decision.allowed ? 'allow' : decision.mode === 'shadow' ? 'would_deny' : 'deny',
    rule: decision.rule,
  };
}

export function buildObservedReport(
  calls: readonly ObservedCall[],
  comparison: PolicyComparison | undefined,
): ObservedReport {
  const times = calls.map((c) => c.time).filter((t): t is number => t !== undefined);
  return {
    calls: calls.length,
    firstSeen: times.length === 0 ? undefined : new Date(Math.min(...times)).toISOString(),
    lastSeen: times.length === 0 ? undefined : new Date(Math.max(...times)).toISOString(),
    edges: observeEdges(calls),
    policy: comparison,
  };
}

/** `allow 3, would_deny 1`: the non-zero counts, for annotations and reports. */
export function outcomeText(outcomes: OutcomeCounts): string {
  const parts = (['allow', 'would_deny', 'deny'] as const)
    .filter((o) => outcomes[o] > 0)
    .map((o) => `${o} ${outcomes[o]}`);
  return parts.length === 0 ? 'none' : parts.join(', ');
}

/** Edge styles for graph-render.ts: used green, never used grey and dashed, shadow-only orange, undeclared red and bold. */
export const OBSERVED_STYLES = {
  used: { color: '#2e7d32', bold: true },
  unused: { color: '#9e9e9e', dashed: true },
  shadowOnly: { color: '#ef6c00' },
  undeclared: { color: '#c62828', bold: true },
} as const satisfies Record<string, EdgeStyle>;

/** Render options that draw `comparison` over the declared policy it was made against. */
export function comparisonRenderOptions(comparison: PolicyComparison): RenderOptions {
  const ruleStyles = new Map<string, EdgeStyle>();
  const shadowOnly = new Set(comparison.shadowOnly.map((use) => use.rule));
  for (const use of comparison.rules) {
    const seen = use.outcomes.allow + use.outcomes.deny + use.outcomes.would_deny;
    if (shadowOnly.has(use.rule))
      ruleStyles.set(use.rule, { ...OBSERVED_STYLES.shadowOnly, annotation: `would deny ${use.outcomes.would_deny}×` });
    else if (use.outcomes.allow > 0)
      ruleStyles.set(use.rule, {
        ...OBSERVED_STYLES.used,
        annotation: `used ${use.outcomes.allow}×${seen > use.outcomes.allow ? ` (${outcomeText(use.outcomes)})` : ''}`,
      });
    else
      ruleStyles.set(use.rule, {
        ...OBSERVED_STYLES.unused,
        annotation: seen === 0 ? 'never used' : `allowed nothing (${outcomeText(use.outcomes)})`,
      });
  }
  const extraEdges: ExtraEdge[] = comparison.undeclared.map((edge) => ({
    from: edge.from,
    to: edge.to,
    label: `${edge.methods.join(',')} ${edge.paths.join(' ')}`,
    style: {
      ...OBSERVED_STYLES.undeclared,
      annotation: `UNDECLARED ${edge.calls}× (${outcomeText(edge.underPolicy)})`,
    },
  }));
  return { ruleStyles, extraEdges };
}

function unique(items: readonly string[]): string[] {
  return [...new Set(items)];
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
