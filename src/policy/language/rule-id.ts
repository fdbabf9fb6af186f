/**
 * Rule ids: the stable name of whatever took a decision, used in decisions,
 * logs, spans, metrics and `baton policy explain`. An accepts rule is
 * `<target>.accepts[<index>]`, or `<target>.accepts.<name>` when it has a
 * `name`. Decisions not taken by an accepts rule name pseudo-rules:
 * `spec.services` (unknown service), `spec.maxDepth`, `<service>.entrypoint`
 * and `<target>.accepts` (no edge at all).
 *
 * Branded, and minted only here: an id built by hand from a typo would
 * still type-check as a string and silently match no rule in a dashboard.
 */
import { isServiceName, type ServiceName } from '../../core/service-name.ts';
import { InternalError } from '../../core/errors.ts';
import type { RuleId } from './model.ts';

// Letters, digits, '.', '_' and '-', at most 63, starting and ending with a letter or digit.
const RULE_NAME = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;
const RULE_INDEX = /^accepts\[(0|[1-9][0-9]{0,8})\]$/;
const SPEC_RULES: ReadonlySet<string> = new Set(['spec.services', 'spec.maxDepth']);

/** A rule's `name` as the policy may spell it. */
export function isRuleName(value: string): boolean {
  return RULE_NAME.test(value);
}

export function isRuleId(value: unknown): value is RuleId {
  if (typeof value !== 'string') return false;
  if (SPEC_RULES.has(value)) return true;
  const service = serviceOfRule(value);
  if (service === undefined) return false;
  const rest = value.slice(service.length + 1);
  return (
    rest === 'entrypoint' ||
    rest === 'accepts' ||
    RULE_INDEX.test(rest) ||
    (rest.startsWith('accepts.') && RULE_NAME.test(rest.slice('accepts.'.length)))
  );
}

/**
 * The service part of `<service>.<rule>`: one label (`orders`), or two
 * (`orders.shop`) unless the second is the rule's first word. A service name
 * never has `accepts` or `entrypoint` as its namespace
 * (src/core/service-name.ts), so the id reads one way.
 */
function serviceOfRule(value: string): ServiceName | undefined {
  const first = value.indexOf('.');
  if (first === -1) return undefined;
  const second = value.indexOf('.', first + 1);
  const next = value.slice(first + 1, second === -1 ? undefined : second).replace(/\[.*$/, '');
  const candidate =
    next === 'accepts' || next === 'entrypoint' || second === -1 ? value.slice(0, first) : value.slice(0, second);
  return isServiceName(candidate) ? candidate : undefined;
}

function mint(text: string): RuleId {
  if (!isRuleId(text))
    throw new InternalError(
      `expected a rule id (<service>.accepts[<index>], <service>.accepts.<name>, <service>.entrypoint, <service>.accepts or spec.*), got ${JSON.stringify(text.slice(0, 160))}`,
      { reason: 'rule-id' },
    );
  return text;
}

/** The accepts rule at `rule` (its 0-based position) or named `rule` on `target`. */
export function ruleId(target: ServiceName, rule: number | string): RuleId {
  if (typeof rule === 'number' && !(Number.isSafeInteger(rule) && rule >= 0))
    throw new InternalError(`expected a rule index that is a whole number from 0, got ${rule}`, { reason: 'rule-id' });
  if (typeof rule === 'string' && !RULE_NAME.test(rule))
    throw new InternalError(
      `expected a rule name of letters, digits, '.', '_' or '-' (at most 63), got ${JSON.stringify(rule.slice(0, 80))}`,
      { reason: 'rule-id' },
    );
  return mint(typeof rule === 'number' ? `${target}.accepts[${rule}]` : `${target}.accepts.${rule}`);
}

/** Decides whether a chain may start at, or an external token may enter at, `service`. */
export function entrypointRuleId(service: ServiceName): RuleId {
  return mint(`${service}.entrypoint`);
}

/** Decides a call to `target` from a caller none of its rules names (or a cycle none allows). */
export function edgeRuleId(target: ServiceName): RuleId {
  return mint(`${target}.accepts`);
}

/** Decides a request naming a service the policy does not know. */
export const SPEC_SERVICES: RuleId = mint('spec.services');
/** Decides a chain longer than `spec.maxDepth`. */
export const SPEC_MAX_DEPTH: RuleId = mint('spec.maxDepth');

/** The service whose rule (or pseudo-rule) `id` is; undefined for the `spec.*` pseudo-rules. */
export function ruleIdService(id: RuleId): ServiceName | undefined {
  if (SPEC_RULES.has(id)) return undefined;
  return serviceOfRule(id);
}
