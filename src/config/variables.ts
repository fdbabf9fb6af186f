/**
 * `BATON_*` environment variables: their names, derived from a schema, and
 * the check that a process refuses one no part of baton reads, as it
 * refuses an unknown key in its file. A misspelt variable is otherwise
 * ignored like any unrelated one, and the process starts without the
 * setting (`BATON_STS__ISUER`).
 *
 * A process legitimately sees `BATON_*` variables that are not its own, and
 * those are left alone:
 * - another part's settings: one env file or compose anchor serves several
 *   parts (docker-compose.yml gives the policy server the telemetry key the
 *   sidecars and the STS read), and the injector's `BATON_SIDECAR__*` are
 *   its own keys, not the sidecar's;
 * - variables of the image, not of baton's configuration
 *   (`BATON_HEALTHCHECK_URL`, read by the health check the Dockerfile and
 *   docker-compose.yml run);
 * - Kubernetes service links: the kubelet gives every pod
 *   `<SERVICE>_SERVICE_HOST`, `<SERVICE>_PORT_7000_TCP` and the like for
 *   each Service in its namespace, so the control plane's pods see
 *   `BATON_STS_SERVICE_HOST` and `BATON_STS_PORT` (Services `baton-sts`,
 *   `baton-policy-server`, …). They are told apart by shape and by coming
 *   in sets: a name is a link only when `<SERVICE>_SERVICE_HOST` and
 *   `<SERVICE>_SERVICE_PORT` are both set, so a lone `BATON_ADMIN_PORT`
 *   (meant as `BATON_ADMIN__PORT`) is still caught.
 */
import { Kind, type TObject, type TSchema } from '@sinclair/typebox';
import { closest } from './closest.ts';
import { ConfigUnknownVariableError } from './config-error.ts';

/** Environment variable name for a config path: `sts.clientId` → `BATON_STS__CLIENT_ID`. */
export function envName(path: readonly string[]): string {
  return 'BATON_' + path.map((segment) => segment.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('__');
}

export function isObjectSchema(schema: TSchema): boolean {
  return schema[Kind] === 'Object';
}

/** Every variable a schema reads: one per key at every depth through objects (an object may be set whole, a list only whole). */
export function envNames(schema: TSchema, prefix: readonly string[] = []): string[] {
  const names: string[] = [];
  for (const [name, child] of Object.entries((schema as TObject).properties ?? {})) {
    const path = [...prefix, name];
    names.push(envName(path));
    if (isObjectSchema(child)) names.push(...envNames(child, path));
  }
  return names;
}

/** `BATON_*` variables that are no configuration key of any part, and who sets them. */
export const IMAGE_VARIABLES: ReadonlyMap<string, string> = new Map([
  ['BATON_HEALTHCHECK_URL', "the URL the image's health check fetches (Dockerfile, docker-compose.yml)"],
]);

// pkg/kubelet/envvars: <NAME>_SERVICE_HOST, _SERVICE_PORT, _SERVICE_PORT_<PORT NAME>, _PORT, _PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR].
const SERVICE_LINK_SUFFIX =
  /^(?:SERVICE_HOST|SERVICE_PORT(?:_[A-Z0-9_]+)?|PORT(?:_\d+_(?:TCP|UDP|SCTP)(?:_(?:PROTO|PORT|ADDR))?)?)$/;

/** The `<NAME>` prefixes of the Kubernetes service links in an environment: both `_SERVICE_HOST` and `_SERVICE_PORT` set. */
function serviceLinkPrefixes(env: Readonly<Record<string, string | undefined>>): string[] {
  return Object.keys(env)
    .filter(
      (name) =>
        name.endsWith('_SERVICE_HOST') && env[`${name.slice(0, -'_SERVICE_HOST'.length)}_SERVICE_PORT`] !== undefined,
    )
    .map((name) => name.slice(0, -'_SERVICE_HOST'.length));
}

function isServiceLink(name: string, prefixes: readonly string[]): boolean {
  return prefixes.some(
    (prefix) => name.startsWith(`${prefix}_`) && SERVICE_LINK_SUFFIX.test(name.slice(prefix.length + 1)),
  );
}

/**
 * Refuses a `BATON_*` variable that neither this schema, nor another part
 * (`otherParts`: variable → the parts that read it), nor the image reads, and
 * that is no Kubernetes service link; suggests the closest name this part
 * reads, else the closest another part reads.
 */
export function checkVariables(
  schema: TSchema,
  env: Readonly<Record<string, string | undefined>>,
  otherParts: ReadonlyMap<string, string>,
): void {
  const batonNames = Object.keys(env).filter((name) => name.startsWith('BATON_') && env[name] !== undefined);
  if (batonNames.length === 0) return;
  const own = envNames(schema);
  const ownSet = new Set(own);
  const links = serviceLinkPrefixes(env);
  for (const name of batonNames.sort()) {
    if (ownSet.has(name) || otherParts.has(name) || IMAGE_VARIABLES.has(name) || isServiceLink(name, links)) continue;
    const mine = closest(name, own);
    const theirs = mine === undefined ? closest(name, [...otherParts.keys()]) : undefined;
    throw new ConfigUnknownVariableError(
      name,
      mine ?? theirs,
      theirs === undefined ? undefined : otherParts.get(theirs),
    );
  }
}
