/**
 * Turns a CallGraph document (already parsed from YAML or JSON) into the
 * normalised `CallGraphPolicy`, or into located problems. Shape first
 * (schema.ts: types and unknown keys), then meaning: names that resolve,
 * methods, path patterns and scope expressions that compile, rules that can
 * ever decide, services a user chain can reach.
 *
 * Errors make the policy unusable; warnings (dead or redundant rules,
 * services no user chain reaches) do not, because a service-identity call
 * may legitimately start anywhere and a redundant rule is not unsafe.
 */
import { Value, ValueErrorType } from '@sinclair/typebox/value';
import { formatScopeExpression, parseScopeExpression, ScopeExpressionError } from '../../core/scope-expression.ts';
import { isServiceName, type ServiceName } from '../../core/service-name.ts';
import {
  type AcceptRule,
  API_VERSION,
  type CallGraphPolicy,
  EXTERNAL,
  HTTP_METHODS,
  type HttpMethod,
  KIND,
  type PolicyMode,
  type PolicyProblem,
  type ServicePolicy,
  type SourceLocation,
  type UserRequirement,
} from './model.ts';
import { checkPathPattern, pathPatternCovers } from './paths.ts';
import { isRuleName, ruleId } from './rule-id.ts';
import { CallGraphSchema, DEFAULT_MAX_DEPTH, MAX_MAX_DEPTH, type RawAcceptRule, type RawCallGraph } from './schema.ts';

export type DocumentPath = readonly (string | number)[];

/** Maps a place in the document to a source location. */
export interface Locator {
  /** The value at `path`, or its key with `key: true`; `offset` is a 0-based offset inside a scalar value, honoured when the source maps 1:1. */
  at(path: DocumentPath, options?: { readonly key?: boolean; readonly offset?: number }): SourceLocation;
}

export interface ValidationResult {
  readonly policy: CallGraphPolicy | undefined;
  readonly problems: PolicyProblem[];
}

const METHODS: ReadonlySet<string> = new Set(HTTP_METHODS);

export function validateCallGraph(data: unknown, locator: Locator): ValidationResult {
  const problems: PolicyProblem[] = [];
  const report = (severity: 'error' | 'warning', code: string, message: string, location: SourceLocation): void => {
    problems.push({ code, message, severity, location });
  };
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    report(
      'error',
      'POLICY_NOT_A_MAPPING',
      `expected a YAML mapping with apiVersion, kind, metadata and spec, got ${describe(data)}`,
      locator.at([]),
    );
    return { policy: undefined, problems };
  }
  const services = (data as { spec?: { services?: unknown } }).spec?.services;
  if (typeof services === 'object' && services !== null && !Array.isArray(services)) {
    // `gateway:` with nothing under it is an empty service, as YAML readers expect.
    for (const [name, value] of Object.entries(services))
      if (value === null) (services as Record<string, unknown>)[name] = {};
  }
  checkSchema(data, locator, report);
  if (problems.length > 0) return { policy: undefined, problems };
  const policy = checkMeaning(data as RawCallGraph, locator, report);
  return { policy: problems.some((p) => p.severity === 'error') ? undefined : policy, problems };
}

type Report = (severity: 'error' | 'warning', code: string, message: string, location: SourceLocation) => void;

function checkSchema(data: unknown, locator: Locator, report: Report): void {
  // Check is a fast pass; the error walk allocates per node and is only worth it when something is wrong.
  if (Value.Check(CallGraphSchema, data)) return;
  const seen = new Set<string>();
  for (const error of Value.Errors(CallGraphSchema, data)) {
    if (seen.has(error.path)) continue;
    seen.add(error.path);
    const path = pointerToPath(error.path);
    const where = path.length === 0 ? '(root)' : path.join('.');
    if (error.type === ValueErrorType.ObjectAdditionalProperties) {
      report(
        'error',
        'POLICY_UNKNOWN_KEY',
        `unknown key '${String(path[path.length - 1])}' at ${where}`,
        locator.at(path, { key: true }),
      );
    } else if (error.type === ValueErrorType.ObjectRequiredProperty) {
      report(
        'error',
        'POLICY_MISSING_KEY',
        `expected key '${String(path[path.length - 1])}' at ${path.slice(0, -1).join('.') || '(root)'}`,
        locator.at(path.slice(0, -1)),
      );
    } else {
      const expected =
        typeof error.schema.description === 'string'
          ? error.schema.description
          : error.message.replace(/^Expected /, '');
      report(
        'error',
        'POLICY_BAD_VALUE',
        `${where}: expected ${expected}, got ${describe(error.value)}`,
        locator.at(path),
      );
    }
  }
}

function pointerToPath(pointer: string): (string | number)[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((part) => {
      const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
      return /^(0|[1-9][0-9]*)$/.test(key) ? Number(key) : key;
    });
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function checkMeaning(raw: RawCallGraph, locator: Locator, report: Report): CallGraphPolicy {
  if (raw.apiVersion !== API_VERSION) {
    report(
      'error',
      'POLICY_BAD_API_VERSION',
      `expected apiVersion '${API_VERSION}', got ${describe(raw.apiVersion)}`,
      locator.at(['apiVersion']),
    );
  }
  if (raw.kind !== KIND)
    report('error', 'POLICY_BAD_KIND', `expected kind '${KIND}', got ${describe(raw.kind)}`, locator.at(['kind']));
  const maxDepth = raw.spec.maxDepth ?? DEFAULT_MAX_DEPTH;
  if (maxDepth < 1 || maxDepth > MAX_MAX_DEPTH) {
    report(
      'error',
      'POLICY_BAD_MAX_DEPTH',
      `expected maxDepth from 1 to ${MAX_MAX_DEPTH}, got ${maxDepth}`,
      locator.at(['spec', 'maxDepth']),
    );
  }
  const graphMode: PolicyMode = raw.spec.mode ?? 'enforce';
  const rawServices = raw.spec.services;
  const names = new Set(Object.keys(rawServices));

  for (const name of names) {
    const at = locator.at(['spec', 'services', name], { key: true });
    if (name === EXTERNAL)
      report(
        'error',
        'POLICY_RESERVED_SERVICE_NAME',
        `'${EXTERNAL}' is reserved for tokens from external identity providers and cannot name a service`,
        at,
      );
    else if (!isServiceName(name))
      report(
        'error',
        'POLICY_BAD_SERVICE_NAME',
        `expected a service name: a DNS-1123 label (lowercase letters, digits, '-'), or service.namespace for a service in another namespace than the mesh's home, got '${name}'`,
        at,
      );
  }
  if (names.size === 0)
    report(
      'error',
      'POLICY_NO_SERVICES',
      'expected at least one service under spec.services',
      locator.at(['spec', 'services']),
    );

  const services = new Map<ServiceName, ServicePolicy>();
  for (const [service, rawService] of Object.entries(rawServices)) {
    const servicePath = ['spec', 'services', service];
    const serviceMode = rawService.mode ?? graphMode;
    const entrypoint = rawService.entrypoint ?? false;
    const ruleNames = new Map<string, number>();
    const accepts: AcceptRule[] = [];
    (rawService.accepts ?? []).forEach((rawRule, index) => {
      const rulePath = [...servicePath, 'accepts', index];
      const rule = checkRule(
        service,
        rawRule,
        index,
        rulePath,
        serviceMode,
        entrypoint,
        names,
        rawServices,
        locator,
        report,
      );
      if (rawRule.name !== undefined) {
        const earlier = ruleNames.get(rawRule.name);
        if (earlier !== undefined) {
          report(
            'error',
            'POLICY_DUPLICATE_RULE_NAME',
            `rule name '${rawRule.name}' is already used by ${service}.accepts[${earlier}]; names must be unique per service`,
            locator.at([...rulePath, 'name']),
          );
        } else {
          ruleNames.set(rawRule.name, index);
        }
      }
      if (rule !== undefined) accepts.push(rule);
    });
    // A name that is not a service name was reported above and its rules checked; the policy is refused, so there is nothing to build.
    if (!isServiceName(service)) continue;
    checkShadowing(accepts, locator, servicePath, report);
    services.set(
      service,
      Object.freeze({
        name: service,
        entrypoint,
        mode: serviceMode,
        accepts: Object.freeze(accepts),
        location: locator.at(servicePath, { key: true }),
      }),
    );
  }
  checkReachability(services, locator, report);
  return Object.freeze({
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: Object.freeze({ name: raw.metadata.name }),
    spec: Object.freeze({ maxDepth, mode: graphMode, services }),
  });
}

function checkRule(
  service: string,
  raw: RawAcceptRule,
  index: number,
  path: DocumentPath,
  serviceMode: PolicyMode,
  entrypoint: boolean,
  names: ReadonlySet<string>,
  rawServices: RawCallGraph['spec']['services'],
  locator: Locator,
  report: Report,
): AcceptRule | undefined {
  const allowCycles = raw.allowCycles ?? false;
  const user: UserRequirement = raw.user ?? 'required';
  if (raw.name !== undefined && !isRuleName(raw.name)) {
    report(
      'error',
      'POLICY_BAD_RULE_NAME',
      `expected a rule name of letters, digits, '.', '_' or '-' (at most 63), got ${describe(raw.name)}`,
      locator.at([...path, 'name']),
    );
  }
  if (raw.from === EXTERNAL) {
    if (!entrypoint)
      report(
        'error',
        'POLICY_EXTERNAL_NOT_ENTRYPOINT',
        `'from: ${EXTERNAL}' on ${service}, which is not an entrypoint: external tokens are refused there before any rule`,
        locator.at([...path, 'from']),
      );
    if (raw.origins !== undefined)
      report(
        'error',
        'POLICY_ORIGINS_ON_EXTERNAL',
        `'origins' does not apply to 'from: ${EXTERNAL}': an external token has no chain`,
        locator.at([...path, 'origins'], { key: true }),
      );
    if (user === 'none')
      report(
        'warning',
        'POLICY_RULE_NEVER_MATCHES',
        `'user: none' with 'from: ${EXTERNAL}' never matches: external tokens always have a user`,
        locator.at([...path, 'user']),
      );
  } else if (!names.has(raw.from)) {
    report(
      'error',
      'POLICY_UNKNOWN_SERVICE',
      `'from' names '${raw.from}', which is not a service in spec.services`,
      locator.at([...path, 'from']),
    );
  } else if (raw.from === service && !allowCycles) {
    report(
      'error',
      'POLICY_SELF_EDGE',
      `${service} accepts calls from itself, a cycle: add 'allowCycles: true' if that is intended`,
      locator.at([...path, 'from']),
    );
  }
  raw.origins?.forEach((origin, i) => {
    if (!names.has(origin)) {
      report(
        'error',
        'POLICY_UNKNOWN_SERVICE',
        `'origins' names '${origin}', which is not a service in spec.services`,
        locator.at([...path, 'origins', i]),
      );
    } else if (user === 'required' && rawServices[origin]?.entrypoint !== true) {
      report(
        'warning',
        'POLICY_ORIGIN_NOT_ENTRYPOINT',
        `origin '${origin}' is not an entrypoint, so no user chain starts there and this rule (user: required) never matches through it`,
        locator.at([...path, 'origins', i]),
      );
    }
  });
  raw.methods?.forEach((method, i) => {
    if (!METHODS.has(method)) {
      const hint = METHODS.has(method.toUpperCase())
        ? ' (HTTP methods are case-sensitive, RFC 9110 §9.1: write it in uppercase)'
        : '';
      report(
        'error',
        'POLICY_BAD_METHOD',
        `expected one of ${HTTP_METHODS.join(', ')}, got ${describe(method)}${hint}`,
        locator.at([...path, 'methods', i]),
      );
    }
  });
  reportDuplicates(raw.methods, [...path, 'methods'], 'method', locator, report);
  raw.paths?.forEach((pattern, i) => {
    const problem = checkPathPattern(pattern);
    if (problem !== undefined) {
      report(
        'error',
        'POLICY_BAD_PATH_PATTERN',
        problem.message,
        locator.at([...path, 'paths', i], { offset: problem.offset }),
      );
      return;
    }
    const cover = raw.paths
      ?.slice(0, i)
      .find(
        (earlier) =>
          checkPathPattern(earlier) === undefined && earlier !== pattern && pathPatternCovers(earlier, pattern),
      );
    if (cover !== undefined)
      report(
        'warning',
        'POLICY_PATH_SHADOWED',
        `path pattern '${pattern}' is already matched by '${cover}' earlier in this list`,
        locator.at([...path, 'paths', i]),
      );
  });
  reportDuplicates(raw.paths, [...path, 'paths'], 'path pattern', locator, report);
  // gRPC methods name the method and path themselves: with `paths` or `methods` as well, one would silently win.
  if (raw.grpc !== undefined && (raw.paths !== undefined || raw.methods !== undefined)) {
    report(
      'error',
      'POLICY_GRPC_WITH_PATHS',
      "'grpc' names the HTTP method and path of each call itself (POST /package.Service/Method): write 'paths' and 'methods' in another rule",
      locator.at([...path, 'grpc'], { key: true }),
    );
  }
  raw.grpc?.forEach((method, i) => {
    if (!GRPC_METHOD.test(method)) {
      report(
        'error',
        'POLICY_BAD_GRPC_METHOD',
        `expected a gRPC method as package.Service/Method or package.Service/* (the protobuf names, no leading /), got ${describe(method)}`,
        locator.at([...path, 'grpc', i]),
      );
    }
  });
  reportDuplicates(raw.grpc, [...path, 'grpc'], 'gRPC method', locator, report);
  reportDuplicates(raw.origins, [...path, 'origins'], 'origin', locator, report);
  reportDuplicates(raw.acr, [...path, 'acr'], 'acr value', locator, report);
  reportDuplicates(raw.issuers, [...path, 'issuers'], 'issuer', locator, report);
  let scopes = raw.scopes;
  if (raw.scopes !== undefined) {
    try {
      scopes = formatScopeExpression(parseScopeExpression(raw.scopes).ast);
    } catch (error) {
      if (!(error instanceof ScopeExpressionError)) throw error;
      report(
        'error',
        'POLICY_BAD_SCOPE_EXPRESSION',
        error.message,
        locator.at([...path, 'scopes'], { offset: error.offset }),
      );
    }
  }
  if (user === 'none' && raw.acr !== undefined) {
    report(
      'warning',
      'POLICY_RULE_NEVER_MATCHES',
      "'acr' with 'user: none' never matches: a service-identity call has no user authentication",
      locator.at([...path, 'acr'], { key: true }),
    );
  }
  // A service, `from` or origin that is not a service name was reported above (badly named or unknown) and the policy is refused: no rule to build.
  const from = raw.from === EXTERNAL ? EXTERNAL : isServiceName(raw.from) ? raw.from : undefined;
  if (!isServiceName(service) || from === undefined) return undefined;
  return Object.freeze({
    // A bad rule name was reported above; the rule keeps its positional id so later messages can still point at it.
    id: ruleId(service, raw.name !== undefined && isRuleName(raw.name) ? raw.name : index),
    name: raw.name,
    from,
    origins: raw.origins === undefined ? undefined : Object.freeze(raw.origins.filter(isServiceName)),
    methods:
      raw.grpc !== undefined
        ? Object.freeze(['POST'] as HttpMethod[])
        : (freezeList(raw.methods) as readonly HttpMethod[] | undefined),
    paths:
      raw.grpc !== undefined
        ? Object.freeze(raw.grpc.filter((m) => GRPC_METHOD.test(m)).map((m) => `/${m}`))
        : freezeList(raw.paths),
    grpc: freezeList(raw.grpc),
    scopes,
    acr: freezeList(raw.acr),
    issuers: freezeList(raw.issuers),
    user,
    allowCycles,
    mode: raw.mode ?? serviceMode,
    location: locator.at(path),
  });
}

// gRPC's `/package.Service/Method` without the slash: protobuf full names (dots between identifiers), or every method (`*`).
const GRPC_METHOD = /^(?:[A-Za-z_][A-Za-z0-9_]*\.)*[A-Za-z_][A-Za-z0-9_]*\/(?:[A-Za-z_][A-Za-z0-9_]*|\*)$/;

function freezeList(list: readonly string[] | undefined): readonly string[] | undefined {
  return list === undefined ? undefined : Object.freeze([...list]);
}

function reportDuplicates(
  list: readonly string[] | undefined,
  path: DocumentPath,
  what: string,
  locator: Locator,
  report: Report,
): void {
  const seen = new Set<string>();
  list?.forEach((item, i) => {
    if (seen.has(item))
      report('warning', 'POLICY_DUPLICATE_ITEM', `${what} '${item}' is listed twice`, locator.at([...path, i]));
    seen.add(item);
  });
}

const USERS: Readonly<Record<UserRequirement, readonly boolean[]>> = {
  required: [true],
  optional: [true, false],
  none: [false],
};

function subset(inner: readonly string[] | undefined, outer: readonly string[] | undefined): boolean {
  if (outer === undefined) return true;
  return inner !== undefined && inner.every((x) => outer.includes(x));
}

/** True when `earlier` matches every request `later` matches: `later` can never decide (rules are tried in order). */
function ruleCovers(earlier: AcceptRule, later: AcceptRule): boolean {
  return (
    subset(later.methods, earlier.methods) &&
    subset(later.origins, earlier.origins) &&
    subset(later.acr, earlier.acr) &&
    subset(later.issuers, earlier.issuers) &&
    (earlier.scopes === undefined || earlier.scopes === later.scopes) &&
    USERS[later.user].every((u) => USERS[earlier.user].includes(u)) &&
    (earlier.allowCycles || !later.allowCycles) &&
    (earlier.paths === undefined ||
      (later.paths !== undefined &&
        later.paths.every((p) =>
          earlier.paths?.some(
            (e) => checkPathPattern(e) === undefined && checkPathPattern(p) === undefined && pathPatternCovers(e, p),
          ),
        )))
  );
}

function sameRule(a: AcceptRule, b: AcceptRule): boolean {
  const same = (x: readonly string[] | undefined, y: readonly string[] | undefined): boolean =>
    JSON.stringify(x) === JSON.stringify(y);
  return (
    a.from === b.from &&
    same(a.origins, b.origins) &&
    same(a.methods, b.methods) &&
    same(a.paths, b.paths) &&
    a.scopes === b.scopes &&
    same(a.acr, b.acr) &&
    same(a.issuers, b.issuers) &&
    a.user === b.user &&
    a.allowCycles === b.allowCycles
  );
}

function checkShadowing(
  accepts: readonly AcceptRule[],
  locator: Locator,
  servicePath: DocumentPath,
  report: Report,
): void {
  accepts.forEach((later, j) => {
    for (let i = 0; i < j; i++) {
      const earlier = accepts[i] as AcceptRule;
      if (earlier.from !== later.from) continue;
      const at = locator.at([...servicePath, 'accepts', j]);
      if (sameRule(earlier, later)) {
        report('warning', 'POLICY_DUPLICATE_RULE', `${later.id} repeats ${earlier.id}`, at);
        return;
      }
      if (ruleCovers(earlier, later)) {
        report(
          'warning',
          'POLICY_RULE_SHADOWED',
          `${later.id} never decides: ${earlier.id} comes first and matches every request it would`,
          at,
        );
        return;
      }
    }
  });
}

function checkReachability(services: ReadonlyMap<ServiceName, ServicePolicy>, locator: Locator, report: Report): void {
  const userEdges = new Map<string, Set<ServiceName>>();
  const named = new Set<string>();
  for (const service of services.values()) {
    for (const rule of service.accepts) {
      named.add(rule.from);
      if (rule.from === EXTERNAL || rule.user === 'none') continue;
      let targets = userEdges.get(rule.from);
      if (targets === undefined) userEdges.set(rule.from, (targets = new Set()));
      targets.add(service.name);
    }
  }
  const entrypoints = [...services.values()].filter((s) => s.entrypoint).map((s) => s.name);
  if (entrypoints.length === 0 && services.size > 0) {
    report(
      'warning',
      'POLICY_NO_ENTRYPOINT',
      'no service is an entrypoint: no user token from an external identity provider is accepted anywhere',
      locator.at(['spec', 'services'], { key: true }),
    );
  }
  const reached = new Set<string>(entrypoints);
  const queue = [...entrypoints];
  for (let next = queue.pop(); next !== undefined; next = queue.pop()) {
    for (const target of userEdges.get(next) ?? []) {
      if (!reached.has(target)) {
        reached.add(target);
        queue.push(target);
      }
    }
  }
  for (const service of services.values()) {
    if (service.entrypoint || reached.has(service.name)) continue;
    const at = locator.at(['spec', 'services', service.name], { key: true });
    const acceptsUsers = service.accepts.some((r) => r.from !== EXTERNAL && r.user !== 'none');
    if (acceptsUsers) {
      report(
        'warning',
        'POLICY_UNREACHABLE_SERVICE',
        `no user chain from an entrypoint reaches ${service.name}: its rules that need a user never match (service-identity calls still can)`,
        at,
      );
    } else if (service.accepts.length === 0 && !named.has(service.name)) {
      report('warning', 'POLICY_ISOLATED_SERVICE', `${service.name} accepts no calls and calls no service`, at);
    }
  }
}
