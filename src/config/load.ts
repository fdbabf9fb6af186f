import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Kind, type Static, type TObject, type TSchema } from '@sinclair/typebox';
import { Value, type ValueError, ValueErrorType } from '@sinclair/typebox/value';
import { parseDocument } from 'yaml';
import { ConfigError, ConfigMissingKeyError, ConfigUnknownKeyError } from './config-error.ts';
import { closest } from './closest.ts';
import { checkVariables, envName, isObjectSchema } from './variables.ts';

export interface LoadOptions {
  /** YAML config file (`--config`). */
  readonly file?: string | undefined;
  /** Environment to read `BATON_*` keys from; pass `process.env` at the edge. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Values from command-line flags; they win over file and environment. */
  readonly overrides?: Readonly<Record<string, unknown>>;
  /**
   * The `BATON_*` variables other parts of baton read, each with the parts
   * that read it (src/cli/part-variables.ts): left alone here. Any other
   * `BATON_*` variable this schema does not read is refused, as an unknown
   * key in the file is (src/config/variables.ts).
   */
  readonly otherParts?: ReadonlyMap<string, string>;
}

/**
 * Loads configuration once, at the edge (STYLE rule 4): file, then
 * `BATON_*` environment variables, then flags; defaults applied; validated
 * against the schema; returned deeply frozen. Every key is settable from
 * the environment: `sts.clientSecret` is `BATON_STS__CLIENT_SECRET`, and a
 * value is read as YAML, so `BATON_INBOUND__PORT=7070` is a number and
 * `BATON_CLIENTS='[{id: a, secret: s}]'` a list.
 */
export function loadConfig<T extends TObject>(schema: T, options: LoadOptions = {}): Readonly<Static<T>> {
  const origin = new Map<string, string>();
  let value: Record<string, unknown> = {};
  const fileLabel = options.file === undefined ? '(no config file)' : resolve(options.file);
  if (options.file !== undefined) {
    value = readYamlFile(options.file);
  }
  checkVariables(schema, options.env ?? {}, options.otherParts ?? new Map());
  for (const [key, raw] of envEntries(schema, options.env ?? {})) {
    setPath(value, key.path, parseScalar(raw.value, raw.name));
    origin.set(key.path.join('.'), `environment variable ${raw.name}`);
  }
  for (const [path, v] of Object.entries(options.overrides ?? {})) {
    if (v === undefined) continue;
    setPath(value, path.split('.'), v);
    origin.set(path, `command-line flag for ${path}`);
  }
  const withDefaults = Value.Default(schema, Value.Clone(value)) as Record<string, unknown>;
  const problem = firstProblem([...Value.Errors(schema, withDefaults)]);
  if (problem !== undefined) throw describeProblem(schema, problem, origin, fileLabel, options.env ?? {});
  return deepFreeze(withDefaults) as Readonly<Static<T>>;
}

/**
 * The error a person should see first. A typo in a key shows up twice, as an
 * unknown key and as the required key it was meant to be; the unknown key is
 * the cause, so it comes first, then a missing key, then a bad value.
 */
function firstProblem(errors: readonly ValueError[]): ValueError | undefined {
  return (
    errors.find((e) => e.type === ValueErrorType.ObjectAdditionalProperties) ??
    errors.find((e) => e.type === ValueErrorType.ObjectRequiredProperty) ??
    errors[0]
  );
}

function describeProblem(
  schema: TSchema,
  problem: ValueError,
  origin: ReadonlyMap<string, string>,
  fileLabel: string,
  env: Readonly<Record<string, string | undefined>>,
): ConfigError {
  const segments = problem.path.split('/').slice(1);
  const key = segments.join('.');
  const source = originOf(origin, key) ?? fileLabel;
  if (problem.type === ValueErrorType.ObjectAdditionalProperties) {
    const known = Object.keys(schemaAt(schema, segments.slice(0, -1))?.properties ?? {});
    return new ConfigUnknownKeyError(source, key, known, closest(segments[segments.length - 1] ?? '', known));
  }
  if (problem.type === ValueErrorType.ObjectRequiredProperty) {
    // A list is set from the environment as a whole: name the variable of the outermost list.
    const firstIndex = segments.findIndex((s) => /^\d+$/.test(s));
    const variable = envName(firstIndex === -1 ? segments : segments.slice(0, firstIndex));
    // A mistyped environment variable is ignored like any unrelated one: say which one was probably meant.
    const near = closest(
      variable,
      Object.keys(env).filter((name) => name.startsWith('BATON_')),
    );
    const hint = near === undefined ? variable : `${variable} (${near} is set: a typo?)`;
    return new ConfigMissingKeyError(
      originOf(origin, key) ?? (fileLabel === '(no config file)' ? 'configuration' : fileLabel),
      key,
      describeExpected(problem.schema, 'a value'),
      hint,
    );
  }
  const seen = SECRET_KEY.test(key) ? 'a value (not shown: secret)' : describeSeen(problem.value);
  return new ConfigError(source, key, describeExpected(problem.schema, problem.message), seen);
}

/** The object schema at a path of property names and array indexes, if there is one. */
function schemaAt(schema: TSchema, segments: readonly string[]): TObject | undefined {
  let node: TSchema | undefined = schema;
  for (const segment of segments) {
    if (node === undefined) return undefined;
    node =
      /^\d+$/.test(segment) && node[Kind] === 'Array'
        ? (node.items as TSchema)
        : ((node as TObject).properties?.[segment] as TSchema | undefined);
  }
  return node !== undefined && isObjectSchema(node) ? (node as TObject) : undefined;
}

function readYamlFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(
      resolve(file),
      '',
      'a readable YAML file',
      (error as NodeJS.ErrnoException).code ?? 'an unreadable file',
    );
  }
  const doc = parseDocument(text, { prettyErrors: true });
  const [problem] = doc.errors;
  if (problem !== undefined) {
    const at = problem.linePos?.[0];
    const where = at === undefined ? resolve(file) : `${resolve(file)}:${at.line}:${at.col}`;
    throw new ConfigError(where, '', 'valid YAML', problem.message.split('\n')[0]);
  }
  const data: unknown = doc.toJS();
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new ConfigError(
      resolve(file),
      '',
      'a YAML mapping at the top level',
      Array.isArray(data) ? 'a list' : typeof data,
    );
  }
  return data as Record<string, unknown>;
}

// A secret must not reach a terminal or a log even when it is malformed.
const SECRET_KEY = /secret|password|token|private/i;

interface EnvKey {
  readonly path: readonly string[];
}

function* envEntries(
  schema: TSchema,
  env: Readonly<Record<string, string | undefined>>,
  prefix: readonly string[] = [],
): Generator<[EnvKey, { name: string; value: string }]> {
  const properties = (schema as TObject).properties ?? {};
  for (const [name, child] of Object.entries(properties)) {
    const path = [...prefix, name];
    const variable = envName(path);
    const raw = env[variable];
    if (raw !== undefined) {
      yield [{ path }, { name: variable, value: raw }];
    } else if (isObjectSchema(child)) {
      yield* envEntries(child, env, path);
    }
  }
}

function parseScalar(raw: string, name: string): unknown {
  const doc = parseDocument(raw);
  if (doc.errors.length > 0)
    throw new ConfigError(`environment variable ${name}`, '', 'a YAML value', 'unparseable text');
  return doc.toJS();
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const segment of path.slice(0, -1)) {
    const next = node[segment];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) {
      node[segment] = {};
    }
    node = node[segment] as Record<string, unknown>;
  }
  node[path[path.length - 1] as string] = value;
}

function originOf(origin: ReadonlyMap<string, string>, key: string): string | undefined {
  for (let k = key; k !== ''; k = k.includes('.') ? k.slice(0, k.lastIndexOf('.')) : '') {
    const found = origin.get(k);
    if (found !== undefined) return found;
  }
  return undefined;
}

function describeExpected(schema: TSchema, message: string): string {
  if (typeof schema.description === 'string') return schema.description;
  return message.replace(/^Expected /, '');
}

function describeSeen(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text === undefined ? typeof value : text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
