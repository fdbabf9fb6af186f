/**
 * The configuration reference a `--help` prints, derived from the schema so
 * that it cannot drift from what the loader accepts: every key, its
 * environment variable, whether it is required, its default and what it
 * expects.
 */
import { Kind, OptionalKind, type TObject, type TSchema } from '@sinclair/typebox';
import { envName } from './variables.ts';

export interface KeyDescription {
  readonly key: string;
  readonly env: string;
  readonly required: boolean;
  readonly default: unknown;
  readonly expects: string;
}

/**
 * The leaves of an object schema, depth first in declaration order. The
 * fields of a list's entries follow the list as `list[].field`: they are
 * set with the list, so they share its environment variable.
 */
export function describeKeys(
  schema: TObject,
  prefix: readonly string[] = [],
  parentRequired = true,
  listEnv?: string,
): KeyDescription[] {
  const required = new Set(schema.required ?? []);
  const out: KeyDescription[] = [];
  for (const [name, child] of Object.entries(schema.properties) as Array<[string, TSchema]>) {
    const path = [...prefix, name];
    const env = listEnv ?? envName(path);
    // A block with a default ({}) may be left out, and then so may everything in it that has a default.
    const isRequired =
      parentRequired && required.has(name) && child.default === undefined && child[OptionalKind] !== 'Optional';
    if (child[Kind] === 'Object' && Object.keys((child as TObject).properties).length > 0) {
      out.push(...describeKeys(child as TObject, path, isRequired, listEnv));
      continue;
    }
    out.push({ key: path.join('.'), env, required: isRequired, default: child.default, expects: expects(child) });
    const items = child[Kind] === 'Array' ? (child.items as TSchema) : undefined;
    if (items !== undefined && items[Kind] === 'Object')
      out.push(...describeKeys(items as TObject, [...prefix, `${name}[]`], true, env));
  }
  return out;
}

function expects(schema: TSchema): string {
  if (typeof schema.description === 'string') return schema.description;
  if (
    schema[Kind] === 'Union' &&
    Array.isArray(schema.anyOf) &&
    schema.anyOf.every((s: TSchema) => s.const !== undefined)
  )
    return (schema.anyOf as TSchema[]).map((s) => String(s.const)).join(' | ');
  if (schema[Kind] === 'Array') return 'a list';
  if (schema[Kind] === 'Record') return 'a map';
  if (schema[Kind] === 'Integer') return schema.minimum === undefined ? 'an integer' : `an integer ≥ ${schema.minimum}`;
  return `a ${String(schema[Kind]).toLowerCase()}`;
}

/** The keys as help text: `  inbound.port  BATON_INBOUND__PORT  default 7070  a TCP port …`. */
export function formatKeys(keys: readonly KeyDescription[]): string {
  const width = Math.max(...keys.map((k) => k.key.length));
  return keys
    .map((k) => {
      const value = k.required
        ? requiredText(k)
        : k.default === undefined
          ? 'optional'
          : `default ${JSON.stringify(k.default)}`;
      return `  ${k.key.padEnd(width)}  ${value}\n  ${' '.repeat(width)}  ${k.expects}; env ${k.env}`;
    })
    .join('\n');
}

/**
 * The keys as a Markdown table, for the configuration reference in docs/
 * (test/docs/config-keys.test.ts keeps the docs equal to it; run
 * `node scripts/config-reference.ts` after changing a schema).
 */
export function markdownKeys(keys: readonly KeyDescription[]): string {
  const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const rows = keys.map((k) => {
    const value = k.required ? requiredText(k) : k.default === undefined ? '—' : `\`${JSON.stringify(k.default)}\``;
    return `| \`${k.key}\` | ${cell(value)} | ${cell(k.expects)} |`;
  });
  return ['| key | default | what it sets |', '| --- | --- | --- |', ...rows].join('\n');
}

/** A field of a list's entries is required in each entry, not in the config. */
function requiredText(key: KeyDescription): string {
  return key.key.includes('[]') ? 'required in each entry' : 'required';
}
