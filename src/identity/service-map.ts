/**
 * The documented rule that turns a SPIFFE ID into a baton service name and
 * back (docs/identity.md). A template over the ID's path, by default the
 * Kubernetes shape that csi-driver-spiffe and SPIRE's k8s workload
 * registrar issue, `/ns/{namespace}/sa/{service}`, within one trust domain;
 * an explicit table overrides it per service.
 *
 * A mesh spans namespaces. The configured `namespace` is the mesh's home:
 * `orders` is the service orders there, `orders.shop` the service orders in
 * namespace shop (src/core/service-name.ts). A template with a
 * `{namespace}` segment maps every namespace; one without maps the home
 * namespace only.
 *
 * One name, one ID, both ways: every ID names at most one service, with one
 * canonical spelling (unqualified at home, qualified elsewhere), and a
 * certificate is trusted as a service only if `serviceOf(id)` names it *and*
 * `idOf(service) === id`. That closes the gap where a table entry moves a
 * service to another ID but the template's spelling would still map to it,
 * and the one where `orders.<home>` would be a second name for `orders`:
 * `idOf` refuses that spelling.
 */
import { IdentityError } from './errors.ts';
import { parseSpiffeId, type SpiffeId } from './spiffe-id.ts';
import { DNS1123_LABEL } from '../core/dns-label.ts';
import { canonicalServiceName, isServiceName, splitServiceName } from '../core/service-name.ts';

export interface ServiceMapConfig {
  readonly trustDomain: string;
  /** The home namespace: substituted for `{namespace}` for an unqualified name. */
  readonly namespace: string;
  /** A path template with exactly one `{service}` segment and at most one `{namespace}` segment, e.g. `/ns/{namespace}/sa/{service}`. */
  readonly template: string;
  /** service name → SPIFFE ID, for services whose ID the template does not give. */
  readonly ids: Readonly<Record<string, string>>;
}

export interface ServiceMap {
  readonly trustDomain: string;
  /** The one SPIFFE ID a service's certificate must carry. Throws for a name the rule cannot give an ID (a non-canonical or invalid one). */
  idOf(service: string): SpiffeId;
  /** The canonical name of the service a SPIFFE ID names, or undefined when it names none. */
  serviceOf(id: string): string | undefined;
}

const SERVICE = '{service}';
const NAMESPACE = '{namespace}';

export function createServiceMap(config: ServiceMapConfig): ServiceMap {
  const segments = templateSegments(config);
  const serviceIndex = segments.indexOf(SERVICE);
  const namespaceIndex = segments.indexOf(NAMESPACE);
  const home = config.namespace;
  const byId = new Map<string, string>();
  const explicit = new Map<string, SpiffeId>();
  for (const [service, id] of Object.entries(config.ids)) {
    if (!isServiceName(service))
      throw new IdentityError(
        'BATON_IDENTITY_UNMAPPED',
        `expected spiffe.ids keys to be service names (orders, or orders.shop), got ${JSON.stringify(service.slice(0, 80))}`,
      );
    const parsed = parseSpiffeId(id);
    if (parsed.trustDomain !== config.trustDomain) {
      throw new IdentityError(
        'BATON_IDENTITY_UNMAPPED',
        `expected spiffe.ids.${service} in trust domain ${config.trustDomain}, got ${parsed.trustDomain}`,
      );
    }
    if (byId.has(parsed.id))
      throw new IdentityError(
        'BATON_IDENTITY_UNMAPPED',
        `expected one service per SPIFFE ID, got ${parsed.id} for ${byId.get(parsed.id)} and ${service}`,
      );
    byId.set(parsed.id, service);
    explicit.set(service, parsed.id);
  }

  const idOf = (name: string): SpiffeId => {
    const listed = explicit.get(name);
    if (listed !== undefined) return listed;
    if (!isServiceName(name))
      throw new IdentityError(
        'BATON_IDENTITY_UNMAPPED',
        `expected a service name (orders, or orders.shop), got ${JSON.stringify(name.slice(0, 80))}`,
      );
    const { service, namespace } = splitServiceName(name);
    if (namespace !== undefined && namespace === home) {
      throw new IdentityError(
        'BATON_IDENTITY_UNMAPPED',
        `expected ${service}, not ${name}: a service in the home namespace ${home} has one name, unqualified`,
      );
    }
    if (namespace !== undefined && namespaceIndex === -1) {
      throw new IdentityError(
        'BATON_IDENTITY_UNMAPPED',
        `expected a service of the home namespace ${home}: spiffe.template ${config.template} has no {namespace}, so ${name} has no ID`,
      );
    }
    const path = segments.map((s) => (s === SERVICE ? service : s === NAMESPACE ? (namespace ?? home) : s));
    return parseSpiffeId(`spiffe://${config.trustDomain}/${path.join('/')}`).id;
  };

  const fromTemplate = (id: string): string | undefined => {
    let parsed;
    try {
      parsed = parseSpiffeId(id);
    } catch {
      return undefined;
    }
    if (parsed.trustDomain !== config.trustDomain || parsed.segments.length !== segments.length) return undefined;
    for (let i = 0; i < segments.length; i++)
      if (i !== serviceIndex && i !== namespaceIndex && parsed.segments[i] !== segments[i]) return undefined;
    const service = parsed.segments[serviceIndex] as string;
    const namespace = namespaceIndex === -1 ? home : (parsed.segments[namespaceIndex] as string);
    if (!DNS1123_LABEL.test(service) || !DNS1123_LABEL.test(namespace)) return undefined;
    const name = canonicalServiceName(service, namespace, home);
    return isServiceName(name) ? name : undefined;
  };

  return {
    trustDomain: config.trustDomain,
    idOf,
    serviceOf(id) {
      const service = byId.get(id) ?? fromTemplate(id);
      if (service === undefined) return undefined;
      // Both directions agree, or the ID names nothing (see the module comment).
      try {
        return idOf(service) === id ? service : undefined;
      } catch {
        return undefined;
      }
    },
  };
}

function templateSegments(config: ServiceMapConfig): string[] {
  if (!config.template.startsWith('/'))
    throw new IdentityError(
      'BATON_IDENTITY_UNMAPPED',
      `expected spiffe.template to start with '/', got ${config.template}`,
    );
  if (!DNS1123_LABEL.test(config.namespace))
    throw new IdentityError(
      'BATON_IDENTITY_UNMAPPED',
      `expected spiffe.namespace to be a DNS-1123 label, got ${JSON.stringify(config.namespace)}`,
    );
  const segments = config.template.slice(1).split('/');
  if (segments.filter((s) => s === SERVICE).length !== 1) {
    throw new IdentityError(
      'BATON_IDENTITY_UNMAPPED',
      `expected spiffe.template to hold exactly one '{service}' segment, got ${config.template}`,
    );
  }
  if (
    segments.filter((s) => s === NAMESPACE).length > 1 ||
    segments.some((s) => s !== NAMESPACE && s.includes(NAMESPACE))
  ) {
    throw new IdentityError(
      'BATON_IDENTITY_UNMAPPED',
      `expected spiffe.template to hold at most one '{namespace}', as a whole segment, got ${config.template}`,
    );
  }
  // The fixed segments must themselves be valid SPIFFE path segments.
  parseSpiffeId(
    `spiffe://${config.trustDomain}/${segments.map((s) => (s === SERVICE || s === NAMESPACE ? 'x' : s)).join('/')}`,
  );
  return segments;
}
