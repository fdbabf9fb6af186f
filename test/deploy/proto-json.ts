/**
 * Strict checking of configuration written as protobuf JSON (or YAML of
 * it) against the message it is: Istio's MeshConfig in istiod's values,
 * Envoy's ext_authz filter in an EnvoyFilter patch. Every key must be a
 * field of its message (by its proto name or its JSON name, as Istio and
 * Envoy both accept), of the right kind; at most one member of a oneof; an
 * enum by one of its names or numbers; a `google.protobuf.Any` checked as
 * the message its `@type` names. Unknown fields are what protobuf's own
 * JSON parsing would also refuse (Envoy and istiod reject them), so a typo
 * in deploy/ fails here instead of in a cluster.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type * as Protobuf from 'protobufjs';

// protobufjs as @grpc/proto-loader resolves it: the copy baton's descriptor is compiled with.
const require = createRequire(createRequire(import.meta.url).resolve('@grpc/proto-loader'));
const protobuf = require('protobufjs') as typeof Protobuf;
const DESCRIPTOR_PROTO = join(require.resolve('protobufjs'), '..', 'google/protobuf/descriptor.proto');

/** The protos of `dir` (a vendored tree), with protobufjs's well-known types. */
export function loadProtos(dir: string, files: readonly string[]): Protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) =>
    target === 'google/protobuf/descriptor.proto'
      ? DESCRIPTOR_PROTO
      : target.startsWith('google/protobuf/')
        ? target
        : join(dir, target);
  root.loadSync([...files], { keepCase: true });
  root.resolveAll();
  return root;
}

/** Every way `value` is not a `typeName` in protobuf JSON, as `path: problem` lines; empty when it is one. */
export function protoJsonProblems(root: Protobuf.Root, typeName: string, value: unknown, path = '$'): string[] {
  return checkMessage(root, root.lookupType(typeName), value, path);
}

const INTEGER_TYPES = new Set([
  'int32',
  'uint32',
  'sint32',
  'fixed32',
  'sfixed32',
  'int64',
  'uint64',
  'sint64',
  'fixed64',
  'sfixed64',
]);
const WRAPPERS: Readonly<Record<string, (v: unknown) => boolean>> = {
  '.google.protobuf.BoolValue': (v) => typeof v === 'boolean',
  '.google.protobuf.StringValue': (v) => typeof v === 'string',
  '.google.protobuf.BytesValue': (v) => typeof v === 'string',
  '.google.protobuf.UInt32Value': isInteger,
  '.google.protobuf.Int32Value': isInteger,
  '.google.protobuf.UInt64Value': isInteger,
  '.google.protobuf.Int64Value': isInteger,
  '.google.protobuf.DoubleValue': (v) => typeof v === 'number',
  '.google.protobuf.FloatValue': (v) => typeof v === 'number',
  // RFC 3339 / proto3 JSON: "1.5s".
  '.google.protobuf.Duration': (v) => typeof v === 'string' && /^-?\d+(\.\d{1,9})?s$/.test(v),
  '.google.protobuf.Timestamp': (v) => typeof v === 'string',
  '.google.protobuf.Struct': (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
  '.google.protobuf.Value': () => true,
  '.google.protobuf.ListValue': Array.isArray,
};

function checkMessage(root: Protobuf.Root, type: Protobuf.Type, value: unknown, path: string): string[] {
  const wellKnown = WRAPPERS[type.fullName];
  if (wellKnown !== undefined)
    return wellKnown(value) ? [] : [`${path}: expected a ${type.fullName} in JSON form, got ${JSON.stringify(value)}`];
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return [`${path}: expected a ${type.fullName} object`];
  const fields = value as Record<string, unknown>;
  if (type.fullName === '.google.protobuf.Any') {
    const url = fields['@type'];
    if (typeof url !== 'string' || !url.startsWith('type.googleapis.com/'))
      return [`${path}: expected an Any with an @type of type.googleapis.com/<message>`];
    let inner: Protobuf.Type;
    try {
      inner = root.lookupType(url.slice('type.googleapis.com/'.length));
    } catch {
      return [`${path}: @type ${url} names no message in the vendored protos`];
    }
    const { '@type': _type, ...rest } = fields;
    return checkMessage(root, inner, rest, path);
  }
  const problems: string[] = [];
  const oneofs = new Map<string, string[]>();
  for (const [key, child] of Object.entries(fields)) {
    const field = type.fieldsArray.find((f) => f.name === key || camel(f.name) === key);
    if (field === undefined) {
      problems.push(`${path}.${key}: no such field in ${type.fullName}`);
      continue;
    }
    if (field.partOf !== null) oneofs.set(field.partOf.name, [...(oneofs.get(field.partOf.name) ?? []), key]);
    problems.push(...checkField(root, field, child, `${path}.${key}`));
  }
  for (const [oneof, members] of oneofs)
    if (members.length > 1)
      problems.push(`${path}: ${members.join(' and ')} are one oneof (${oneof}) of ${type.fullName}`);
  return problems;
}

function checkField(root: Protobuf.Root, field: Protobuf.Field, value: unknown, path: string): string[] {
  if (field instanceof protobuf.MapField) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return [`${path}: expected a map`];
    return Object.entries(value).flatMap(([k, v]) => checkSingle(root, field, v, `${path}[${JSON.stringify(k)}]`));
  }
  if (field.repeated) {
    if (!Array.isArray(value)) return [`${path}: expected a list`];
    return value.flatMap((v, i) => checkSingle(root, field, v, `${path}[${i}]`));
  }
  return checkSingle(root, field, value, path);
}

function checkSingle(root: Protobuf.Root, field: Protobuf.Field, value: unknown, path: string): string[] {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) return checkMessage(root, resolved, value, path);
  if (resolved instanceof protobuf.Enum) {
    const ok =
      (typeof value === 'string' && Object.hasOwn(resolved.values, value)) ||
      (Number.isInteger(value) && Object.values(resolved.values).includes(value as number));
    return ok
      ? []
      : [`${path}: expected one of ${Object.keys(resolved.values).join(', ')}, got ${JSON.stringify(value)}`];
  }
  const ok =
    field.type === 'string' || field.type === 'bytes'
      ? typeof value === 'string'
      : field.type === 'bool'
        ? typeof value === 'boolean'
        : INTEGER_TYPES.has(field.type)
          ? isInteger(value)
          : typeof value === 'number';
  return ok ? [] : [`${path}: expected a ${field.type}, got ${JSON.stringify(value)}`];
}

function isInteger(value: unknown): boolean {
  return Number.isInteger(value) || (typeof value === 'string' && /^-?\d+$/.test(value));
}

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}
