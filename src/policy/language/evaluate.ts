/**
 * The decision (DESIGN.md, "Call-graph policy"), checked in this order,
 * each failure naming the rule that decided it:
 *
 *   1. every service is known                  → unknown_service (spec.services)
 *   2. chain length ≤ maxDepth                  → depth_exceeded  (spec.maxDepth)
 *   3. a user chain starts at an entrypoint     → not_entrypoint  (<origin>.entrypoint)
 *   4. every hop is an edge, no unwanted cycle  → no_edge / cycle (<callee>.accepts)
 *   5. some rule of the last edge matches: origins, user, method, path,
 *      subject issuer, scopes, acr — first full match allows; otherwise the rule that got
 *      furthest explains the denial.
 *
 * Pure and allocation-light: Map lookups per hop, no scan of the graph.
 */
import type { ScopeExpression } from '../../core/scope-expression.ts';
import type { Decision, DecisionInput, DenyCause } from './decision.ts';
import { EXTERNAL, type PolicyMode, type UserRequirement } from './model.ts';
import type { RuleId } from './model.ts';
import { SPEC_MAX_DEPTH, SPEC_SERVICES } from './rule-id.ts';

export interface CompiledRule {
  readonly id: RuleId;
  readonly from: string;
  readonly origins: ReadonlySet<string> | undefined;
  readonly methods: ReadonlySet<string> | undefined;
  readonly matchesPath: ((path: string) => boolean) | undefined;
  readonly scopes: ScopeExpression | undefined;
  readonly acr: readonly string[] | undefined;
  readonly issuers: ReadonlySet<string> | undefined;
  readonly user: UserRequirement;
  readonly allowCycles: boolean;
  readonly mode: PolicyMode;
  /** For reasons only. */
  readonly paths: readonly string[] | undefined;
}

export interface CompiledService {
  readonly name: string;
  /** `<name>.entrypoint` and `<name>.accepts`, minted at compile time so a denial allocates no id. */
  readonly entrypointRule: RuleId;
  readonly edgeRule: RuleId;
  readonly entrypoint: boolean;
  readonly mode: PolicyMode;
  /** Caller (or `external`) → its rules, in policy order. */
  readonly byCaller: ReadonlyMap<string, readonly CompiledRule[]>;
}

export interface CompiledGraph {
  readonly maxDepth: number;
  readonly mode: PolicyMode;
  readonly services: ReadonlyMap<string, CompiledService>;
}

// The subject's issuer after the route: a denial is explained by the rule that covers the route, not by one for another path.
const STAGE = { origin: 0, user: 1, method: 2, path: 3, issuer: 4, scope: 5, acr: 6 } as const;
const STAGE_CAUSE: readonly DenyCause[] = ['origin', 'user', 'method', 'path', 'issuer', 'scope', 'acr'];
const PASSED = -1;

export function evaluate(graph: CompiledGraph, input: DecisionInput): Decision {
  const { chain, target } = input;
  const callee = graph.services.get(target);
  if (callee === undefined)
    return deny(
      SPEC_SERVICES,
      `unknown service '${clip(target)}': not in spec.services`,
      'unknown_service',
      graph.mode,
    );
  for (const caller of chain) {
    if (!graph.services.has(caller))
      return deny(
        SPEC_SERVICES,
        `unknown service '${clip(caller)}' in the chain: not in spec.services`,
        'unknown_service',
        graph.mode,
      );
  }
  if (chain.length > graph.maxDepth) {
    return deny(
      SPEC_MAX_DEPTH,
      `a chain of ${chain.length} callers exceeds maxDepth ${graph.maxDepth}`,
      'depth_exceeded',
      graph.mode,
    );
  }
  if (chain.length === 0) return evaluateExternal(callee, input);

  const originName = chain[0] as string;
  const origin = graph.services.get(originName) as CompiledService;
  if (input.user && !origin.entrypoint) {
    return deny(
      origin.entrypointRule,
      `a user chain must start at an entrypoint, got ${originName}`,
      'not_entrypoint',
      origin.mode,
    );
  }
  const seen = new Set<string>([originName]);
  for (let i = 1; i < chain.length; i++) {
    const from = chain[i - 1] as string;
    const to = chain[i] as string;
    const hop = graph.services.get(to) as CompiledService;
    const rules = hop.byCaller.get(from);
    if (rules === undefined)
      return deny(
        hop.edgeRule,
        `no rule in ${to}.accepts accepts calls from ${from} (hop ${i} of the chain)`,
        'no_edge',
        hop.mode,
      );
    if (seen.has(to) && !rules.some((r) => r.allowCycles)) {
      return deny(
        hop.edgeRule,
        `${from}→${to} closes a cycle and no rule on that edge has allowCycles`,
        'cycle',
        hop.mode,
      );
    }
    seen.add(to);
  }
  const caller = chain[chain.length - 1] as string;
  const edge = `${caller}→${target}`;
  let rules = callee.byCaller.get(caller);
  if (rules === undefined)
    return deny(callee.edgeRule, `no rule in ${target}.accepts accepts calls from ${caller}`, 'no_edge', callee.mode);
  if (seen.has(target)) {
    rules = rules.filter((r) => r.allowCycles);
    if (rules.length === 0)
      return deny(
        callee.edgeRule,
        `${edge} closes a cycle and no rule on that edge has allowCycles`,
        'cycle',
        callee.mode,
      );
  }
  return matchRules(rules, input, originName, edge);
}

function evaluateExternal(callee: CompiledService, input: DecisionInput): Decision {
  if (!callee.entrypoint) {
    return deny(
      callee.entrypointRule,
      `a token from an external identity provider is accepted only at an entrypoint, and ${callee.name} is not one`,
      'not_entrypoint',
      callee.mode,
    );
  }
  const rules = callee.byCaller.get(EXTERNAL);
  if (rules === undefined) {
    return {
      allowed: true,
      rule: callee.entrypointRule,
      reason: `external token allowed at entrypoint ${callee.name}`,
      mode: callee.mode,
    };
  }
  return matchRules(rules, input, undefined, `${EXTERNAL}→${callee.name}`);
}

function matchRules(
  rules: readonly CompiledRule[],
  input: DecisionInput,
  origin: string | undefined,
  edge: string,
): Decision {
  const stages: number[] = [];
  for (const rule of rules) {
    const stage = failedStage(rule, input, origin);
    if (stage === PASSED)
      return { allowed: true, rule: rule.id, reason: `${edge} allowed by ${rule.id}`, mode: rule.mode };
    stages.push(stage);
  }
  const mode = denialMode(rules, input);
  // A shadowed denial is explained by the shadow rule that covers the route;
  // an enforced one by the rule that got furthest.
  let best = -1;
  for (let i = 0; i < rules.length; i++) {
    if (mode === 'shadow' && !coversRoute(rules[i] as CompiledRule, input)) continue;
    if (best === -1 || (stages[i] as number) > (stages[best] as number)) best = i;
  }
  const rule = rules[best] as CompiledRule;
  const cause = STAGE_CAUSE[stages[best] as number] as DenyCause;
  const reason = `${edge} denied by ${rule.id}: ${failureReason(rule, cause, input, origin)}`;
  if (cause === 'acr') return { allowed: false, rule: rule.id, reason, cause, mode, acrValues: rule.acr ?? [] };
  return deny(rule.id, reason, cause, mode);
}

/**
 * A denial on an edge is only observed (shadow) when every rule of the edge
 * whose route covers this request is in shadow mode. Which rule "got
 * furthest" must not decide it: a shadow rule rolling out on /refunds must
 * never let through a call to /charges that an enforced rule refuses.
 */
function denialMode(rules: readonly CompiledRule[], input: DecisionInput): PolicyMode {
  let covered = false;
  for (const rule of rules) {
    if (!coversRoute(rule, input)) continue;
    if (rule.mode === 'enforce') return 'enforce';
    covered = true;
  }
  return covered ? 'shadow' : 'enforce';
}

function coversRoute(rule: CompiledRule, input: DecisionInput): boolean {
  if (rule.methods !== undefined && input.method !== undefined && !rule.methods.has(input.method)) return false;
  return rule.matchesPath === undefined || input.path === undefined || rule.matchesPath(input.path);
}

function failedStage(rule: CompiledRule, input: DecisionInput, origin: string | undefined): number {
  if (rule.origins !== undefined && origin !== undefined && !rule.origins.has(origin)) return STAGE.origin;
  if (rule.user === 'required' ? !input.user : rule.user === 'none' && input.user) return STAGE.user;
  if (rule.methods !== undefined && input.method !== undefined && !rule.methods.has(input.method)) return STAGE.method;
  if (rule.matchesPath !== undefined && input.path !== undefined && !rule.matchesPath(input.path)) return STAGE.path;
  if (rule.issuers !== undefined && (input.subjectIssuer === undefined || !rule.issuers.has(input.subjectIssuer)))
    return STAGE.issuer;
  if (rule.scopes !== undefined && !rule.scopes.evaluate(input.scopes)) return STAGE.scope;
  if (rule.acr !== undefined && (input.acr === undefined || !rule.acr.includes(input.acr))) return STAGE.acr;
  return PASSED;
}

function failureReason(rule: CompiledRule, cause: DenyCause, input: DecisionInput, origin: string | undefined): string {
  switch (cause) {
    case 'origin':
      return `the chain started at ${origin}, expected one of [${[...(rule.origins ?? [])].join(', ')}]`;
    case 'user':
      return rule.user === 'required'
        ? 'a user is required, got a service-identity call'
        : 'only service-identity calls are accepted, got a user token';
    case 'issuer':
      return `the subject was authenticated by ${input.subjectIssuer === undefined ? '(no issuer)' : clip(input.subjectIssuer)}, expected one of [${[...(rule.issuers ?? [])].join(', ')}]`;
    case 'method':
      return `method ${clip(input.method ?? '')} is not one of [${[...(rule.methods ?? [])].join(', ')}]`;
    case 'path':
      return `path ${clip((input.path ?? '').split('?')[0] ?? '')} matches none of [${(rule.paths ?? []).join(', ')}]`;
    case 'scope':
      return `the token's scopes do not satisfy '${rule.scopes?.source ?? ''}'`;
    default:
      return `acr ${input.acr === undefined ? '(none)' : clip(input.acr)} is not one of [${(rule.acr ?? []).join(', ')}]: step-up authentication needed (RFC 9470)`;
  }
}

function deny(rule: RuleId, reason: string, cause: DenyCause, mode: PolicyMode): Decision {
  return { allowed: false, rule, reason, cause, mode };
}

// Request-controlled text in a reason goes to logs: keep it short and printable.
function clip(text: string): string {
  const printable = text.replace(/[^\x20-\x7e]/g, '?');
  return printable.length > 120 ? `${printable.slice(0, 117)}...` : printable;
}
