/**
 * Reads a CallGraph from YAML text, keeping node positions so every
 * problem points at a line and column, and the column inside a scope
 * expression or path pattern where the YAML maps it one to one.
 */
import {
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  type Pair,
  parseDocument,
  Scalar,
  visit,
  type YAMLMap,
} from 'yaml';
import { PolicyInvalidError } from './errors.ts';
import type { CallGraphPolicy, PolicyProblem, ServicePolicy, SourceLocation } from './model.ts';
import { type DocumentPath, type Locator, validateCallGraph } from './validate.ts';

export interface ParseResult {
  /** Undefined when any problem is an error. */
  readonly policy: CallGraphPolicy | undefined;
  readonly problems: PolicyProblem[];
}

// Anchors and aliases are YAML; a billion-laughs document is not a policy.
const MAX_ALIAS_COUNT = 100;

export function parsePolicy(text: string, file: string): ParseResult {
  const lineCounter = new LineCounter();
  // yaml's own uniqueKeys check is quadratic in a mapping's size; duplicateKeys() below is linear.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: false, strict: true });
  const locate = (offset: number): SourceLocation => {
    const { line, col } = lineCounter.linePos(offset);
    return { file, line, column: col };
  };
  const problems: PolicyProblem[] = [];
  for (const error of doc.errors) {
    const code = error.code === 'DUPLICATE_KEY' ? 'POLICY_DUPLICATE_KEY' : 'POLICY_YAML_SYNTAX';
    problems.push({
      code,
      message: error.message.split('\n')[0] ?? error.code,
      severity: 'error',
      location: locate(error.pos[0]),
    });
  }
  for (const key of duplicateKeys(doc.contents)) {
    problems.push({
      code: 'POLICY_DUPLICATE_KEY',
      message: `duplicate key '${String(key.value)}': YAML map keys must be unique, and a repeated one would silently replace the first`,
      severity: 'error',
      location: locate(key.range?.[0] ?? 0),
    });
  }
  for (const warning of doc.warnings) {
    problems.push({
      code: 'POLICY_YAML_WARNING',
      message: warning.message.split('\n')[0] ?? warning.code,
      severity: 'warning',
      location: locate(warning.pos[0]),
    });
  }
  if (problems.some((p) => p.severity === 'error')) return { policy: undefined, problems };
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    problems.push({
      code: 'POLICY_YAML_SYNTAX',
      message: error instanceof Error ? (error.message.split('\n')[0] ?? 'unreadable YAML') : 'unreadable YAML',
      severity: 'error',
      location: locate(0),
    });
    return { policy: undefined, problems };
  }
  const index = new WeakMap<YAMLMap, Map<string, Pair>>();
  const locator: Locator = { at: (path, options) => locateNode(doc.contents, path, options, text, locate, index) };
  const result = validateCallGraph(data, locator);
  problems.push(...result.problems);
  return { policy: result.policy, problems: sortProblems(problems) };
}

export function sortProblems(problems: PolicyProblem[]): PolicyProblem[] {
  return problems.sort((a, b) => a.location.line - b.location.line || a.location.column - b.location.column);
}

function locateNode(
  root: unknown,
  path: DocumentPath,
  options: { readonly key?: boolean; readonly offset?: number } | undefined,
  text: string,
  locate: (offset: number) => SourceLocation,
  index: WeakMap<YAMLMap, Map<string, Pair>>,
): SourceLocation {
  let node: unknown = root;
  let keyNode: unknown;
  let found = true;
  for (const segment of path) {
    let next: unknown;
    let nextKey: unknown;
    if (isMap(node)) {
      const pair = pairsOf(node, index).get(String(segment));
      if (pair !== undefined) {
        next = pair.value ?? pair.key;
        nextKey = pair.key;
      }
    } else if (isSeq(node) && typeof segment === 'number') {
      next = node.items[segment];
    }
    if (next === undefined) {
      found = false;
      break;
    }
    node = next;
    keyNode = nextKey;
  }
  const target = (options?.key === true && found && keyNode !== undefined ? keyNode : node) as Node | undefined;
  const range = target?.range;
  if (range === undefined || range === null) return locate(0);
  const offset = options?.offset;
  if (found && offset !== undefined && isScalar(target)) return locate(range[0] + scalarOffset(target, text, offset));
  return locate(range[0]);
}

function duplicateKeys(root: unknown): Scalar[] {
  const found: Scalar[] = [];
  visit(root as Node, {
    Map(_, map) {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        if (!isScalar(pair.key)) continue;
        if (seen.has(pair.key.value)) found.push(pair.key);
        seen.add(pair.key.value);
      }
    },
  });
  return found;
}

// Locations are asked for every service and rule: index each mapping once so a 10,000-service file stays linear.
function pairsOf(map: YAMLMap, index: WeakMap<YAMLMap, Map<string, Pair>>): Map<string, Pair> {
  let pairs = index.get(map);
  if (pairs === undefined) {
    pairs = new Map();
    for (const item of map.items) {
      if (isPair(item) && isScalar(item.key) && !pairs.has(String(item.key.value)))
        pairs.set(String(item.key.value), item as Pair);
    }
    index.set(map, pairs);
  }
  return pairs;
}

/** Where, in the source, the `offset`-th character of a scalar's value sits; 0 when the scalar's source is not a verbatim copy. */
function scalarOffset(scalar: Scalar, text: string, offset: number): number {
  const range = scalar.range;
  if (range === undefined || range === null || typeof scalar.value !== 'string') return 0;
  const source = text.slice(range[0], range[1]);
  const value = scalar.value;
  if (scalar.type === Scalar.PLAIN && source === value) return offset;
  if ((scalar.type === Scalar.QUOTE_DOUBLE || scalar.type === Scalar.QUOTE_SINGLE) && source.slice(1, -1) === value)
    return offset + 1;
  return 0;
}

const POLICY_SERVER_LOCATION: SourceLocation = Object.freeze({ file: '<policy-server>', line: 1, column: 1 });

/**
 * The normalised policy as plain JSON, every default explicit and keys in a
 * fixed order: what the policy server signs and what the digest hashes.
 * `policyFromJSON(policyToJSON(p))` is `p` without source locations.
 */
export function policyToJSON(policy: CallGraphPolicy): unknown {
  const services: Record<string, unknown> = {};
  for (const name of [...policy.spec.services.keys()].sort()) {
    const service = policy.spec.services.get(name) as ServicePolicy;
    services[name] = {
      entrypoint: service.entrypoint,
      mode: service.mode,
      accepts: service.accepts.map((rule) => {
        const json: Record<string, unknown> = {};
        if (rule.name !== undefined) json.name = rule.name;
        json.from = rule.from;
        if (rule.origins !== undefined) json.origins = [...rule.origins];
        // A gRPC rule travels as written: its methods and paths are derived from it.
        if (rule.grpc !== undefined) json.grpc = [...rule.grpc];
        else {
          if (rule.methods !== undefined) json.methods = [...rule.methods];
          if (rule.paths !== undefined) json.paths = [...rule.paths];
        }
        if (rule.scopes !== undefined) json.scopes = rule.scopes;
        if (rule.acr !== undefined) json.acr = [...rule.acr];
        // Only when set: policies without it keep their digest.
        if (rule.issuers !== undefined) json.issuers = [...rule.issuers];
        json.user = rule.user;
        json.allowCycles = rule.allowCycles;
        json.mode = rule.mode;
        return json;
      }),
    };
  }
  return {
    apiVersion: policy.apiVersion,
    kind: policy.kind,
    metadata: { name: policy.metadata.name },
    spec: { maxDepth: policy.spec.maxDepth, mode: policy.spec.mode, services },
  };
}

/**
 * Rebuilds a policy that arrived as JSON (from the policy server) through
 * the same schema and semantic checks as a file: a signature says who sent
 * it, not that it is well formed. Throws `PolicyInvalidError` on errors.
 */
export function policyFromJSON(json: unknown): CallGraphPolicy {
  const locator: Locator = { at: () => POLICY_SERVER_LOCATION };
  let copy: unknown;
  try {
    copy = structuredClone(json);
  } catch {
    throw new PolicyInvalidError([
      {
        code: 'POLICY_NOT_A_MAPPING',
        message: 'expected plain JSON data',
        severity: 'error',
        location: POLICY_SERVER_LOCATION,
      },
    ]);
  }
  const { policy, problems } = validateCallGraph(copy, locator);
  if (policy === undefined) throw new PolicyInvalidError(problems);
  return policy;
}
