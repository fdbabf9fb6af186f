/**
 * The documented rule that turns a SPIFFE ID into a baton service name and
 * back (docs/identity.md). A template over the ID's path, by default the
 * Kubernetes shape that csi-driver-spiffe and SPIRE's k8s workload
 * registrar issue, `/ns/{namespace}/sa/{service}`, within one trust domain
 * and one namespace; an explicit table overrides it per service.
 *
 * Both directions must agree exactly: a certificate is trusted as a service
 * only if `serviceOf(id)` names it *and* `idOf(service) === id`. That closes
 * the gap where a table entry moves a service to another ID but the
 * template's spelling would still map to it.
 */
import { IdentityError } from './errors.ts';
import { parseSpiffeId, type SpiffeId } from './spiffe-id.ts';
import { DNS1123_LABEL } from '../core/dns-label.ts';

export interface ServiceMapConfig {
  readonly trustDomain: string;
  /** Substituted for `{namespace}` in the template. */
  readonly namespace: string;
  /** A path template with exactly one `{service}` segment, e.g. `/ns/{namespace}/sa/{service}`. */
  readonly template: string;
  /** service name → SPIFFE ID, for services whose ID the template does not give. */
  readonly ids: Readonly<Record<string, string>>;
}

export interface ServiceMap {
  readonly trustDomain: string;
  /** The one SPIFFE ID a service's certificate must carry. */
  idOf(service: string): SpiffeId;
  /** The service a SPIFFE ID names, or undefined when it names none. */
  serviceOf(id: string): string | undefined;
}

export function createServiceMap(config: ServiceMapConfig): ServiceMap {
  const segments = templateSegments(config);
  const serviceIndex = segments.indexOf(SERVICE);
  const byId = new Map<string, string>();
  const explicit = new Map<string, SpiffeId>();
  for (const [service, id] of Object.entries(config.ids)) {
    const parsed = parseSpiffeId(id);
    if (parsed.trustDomain !== config.trustDomain) {
      throw new IdentityError('BATON_IDENTITY_UNMAPPED', `expected spiffe.ids.${service} in trust domain ${config.trustDomain}, got ${parsed.trustDomain}`);
    }
    if (byId.has(parsed.id)) throw new IdentityError('BATON_IDENTITY_UNMAPPED', `expected one service per SPIFFE ID, got ${parsed.id} for ${byId.get(parsed.id)} and ${service}`);
    byId.set(parsed.id, service);
    explicit.set(service, parsed.id);
  }

  const idOf = (service: string): SpiffeId => {
    const listed = explicit.get(service);
    if (listed !== undefined) return listed;
    return parseSpiffeId(`spiffe://${config.trustDomain}/${segments.map((s) => (s === SERVICE ? service : s)).join('/')}`).id;
  };

  const fromTemplate = (id: string): string | undefined => {
    let parsed;
    try {
      parsed = parseSpiffeId(id);
    } catch {
      return undefined;
    }
    if (parsed.trustDomain !== config.trustDomain || parsed.segments.length !== segments.length) return undefined;
    for (let i = 0; i < segments.length; i++) if (i !== serviceIndex && parsed.segments[i] !== segments[i]) return undefined;
    const service = parsed.segments[serviceIndex] as string;
    return DNS1123_LABEL.test(service) ? service : undefined;
  };

  return {
    trustDomain: config.trustDomain,
    idOf,
    serviceOf(id) {
      const service = byId.get(id) ?? fromTemplate(id);
      // Both directions agree, or the ID names nothing (see the module comment).
      return service !== undefined && idOf(service) === id ? service : undefined;
    },
  };
}

const SERVICE = '{service}';

function templateSegments(config: ServiceMapConfig): string[] {
  const path = config.template.replaceAll('{namespace}', config.namespace);
  if (!path.startsWith('/')) throw new IdentityError('BATON_IDENTITY_UNMAPPED', `expected spiffe.template to start with '/', got ${config.template}`);
  const segments = path.slice(1).split('/');
  if (segments.filter((s) => s === SERVICE).length !== 1) {
    throw new IdentityError('BATON_IDENTITY_UNMAPPED', `expected spiffe.template to hold exactly one '{service}' segment, got ${config.template}`);
  }
  // The fixed segments must themselves be valid SPIFFE path segments.
  parseSpiffeId(`spiffe://${config.trustDomain}/${segments.map((s) => (s === SERVICE ? 'x' : s)).join('/')}`);
  return segments;
}
