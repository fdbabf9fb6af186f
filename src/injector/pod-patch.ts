/**
 * Decides what to do with one pod and, when it opted in, builds the RFC 6902
 * JSON Patch that adds the sidecar. Pure: the webhook is a thin shell around
 * it, and the tests apply its patches with a JSON Patch library.
 */
import { readSettings, wantsInjection, ANNOTATION } from './annotations.ts';
import type { SidecarTemplate } from './config.ts';
import type { Container, JsonPatchAdd, Pod } from './kubernetes-types.ts';
import { HELPER_CONTAINER_NAME, identityLayout } from './identity-layout.ts';
import { appEnv, SIDECAR_CONTAINER_NAME, sidecarContainer, sidecarVolumes } from './sidecar-container.ts';
import {
  AUTHZ_CONTAINER_NAME,
  authzContainer,
  controlPlanePorts,
  DATA_PLANE_LABEL,
  ISTIO_EXCLUDE_OUTBOUND_PORTS,
} from './authz-container.ts';
import { DNS1123_LABEL } from '../core/dns-label.ts';
import { canonicalServiceName, isServiceName } from '../core/service-name.ts';

export type InjectionPlan =
  | { readonly outcome: 'skip'; readonly reason: string; readonly warnings: readonly string[] }
  | { readonly outcome: 'deny'; readonly reason: string }
  | {
      readonly outcome: 'inject';
      readonly serviceAccount: string;
      readonly service: string;
      readonly patch: readonly JsonPatchAdd[];
      readonly warnings: readonly string[];
    };

// What the ServiceAccount admission plugin would set; it runs before mutating webhooks, so this is a fallback.
const DEFAULT_SERVICE_ACCOUNT = 'default';

/** `namespace` is the AdmissionReview's request.namespace, where the pod will run. */
export function planInjection(pod: Pod, template: SidecarTemplate, namespace?: string): InjectionPlan {
  if (!wantsInjection(pod))
    return { outcome: 'skip', reason: `no ${ANNOTATION.inject}: "true" annotation`, warnings: [] };
  if (alreadyInjected(pod))
    return { outcome: 'skip', reason: `a ${SIDECAR_CONTAINER_NAME} container is already present`, warnings: [] };
  if (pod.spec.hostNetwork === true)
    return {
      outcome: 'deny',
      reason: 'baton cannot be injected into a hostNetwork pod: its ports would open on the node',
    };
  const serviceAccount = pod.spec.serviceAccountName || DEFAULT_SERVICE_ACCOUNT;
  // The service name in the call graph is a DNS-1123 label; a ServiceAccount name may be a longer subdomain.
  if (!DNS1123_LABEL.test(serviceAccount))
    return {
      outcome: 'deny',
      reason: `ServiceAccount ${JSON.stringify(serviceAccount)} is not a DNS-1123 label, so it cannot name a service in the call graph`,
    };
  const read = readSettings(pod, template);
  if (!read.ok) return { outcome: 'deny', reason: read.reason };
  const { settings } = read;
  const mtls = template.transport.mode === 'mtls';
  // A mesh spans namespaces: the service is the ServiceAccount, qualified by the pod's namespace
  // unless that is the mesh's home (orders, orders.shop), the name its certificate maps to both ways.
  const home = template.spiffe.namespace;
  const podNamespace = namespace ?? home;
  if (mtls && podNamespace !== home && !template.spiffe.template.split('/').includes('{namespace}')) {
    return {
      outcome: 'deny',
      reason: `the mesh's SPIFFE rule (${template.spiffe.template}) names services of namespace ${home} only, so a pod in ${podNamespace} would get a certificate that names no service`,
    };
  }
  const service = canonicalServiceName(serviceAccount, podNamespace, home);
  if (!isServiceName(service))
    return {
      outcome: 'deny',
      reason: `namespace ${podNamespace} cannot qualify a service name (accepts and entrypoint are reserved words)`,
    };
  const warnings = [...settings.warnings];
  if (serviceAccount === DEFAULT_SERVICE_ACCOUNT)
    warnings.push(
      'the pod runs as the "default" ServiceAccount: give each service its own ServiceAccount, it is the service\'s identity',
    );

  const identity = mtls ? identityLayout(template, settings.svidSource) : undefined;
  const authz = settings.dataPlane === 'authz';
  const patch: JsonPatchAdd[] = [];
  // First among the init containers, so later init containers can already call
  // out through it; an identity helper goes before it, so the files are there.
  // Authz data plane: baton authz beside the proxy the pod already runs, which keeps its traffic (docs/istio.md).
  const natives = [
    ...(identity?.containers ?? []),
    authz
      ? authzContainer(template, settings, { serviceAccount, service }, identity)
      : sidecarContainer(template, settings, { serviceAccount, service }, identity),
  ];
  if (pod.spec.initContainers === undefined) patch.push({ op: 'add', path: '/spec/initContainers', value: natives });
  else
    natives.forEach((container, index) =>
      patch.push({ op: 'add', path: `/spec/initContainers/${index}`, value: container }),
    );

  // The app calls out through its proxy either way; only baton's sidecar has an outbound port to tell it of.
  const additions = authz ? [] : appEnv(settings);
  pod.spec.containers.forEach((container, index) => {
    patch.push(...envPatch(container, index, additions, warnings));
  });

  const volumes = sidecarVolumes(template, { serviceAccount, service }, identity, settings.dataPlane);
  const clashing = volumes.find((v) => (pod.spec.volumes ?? []).some((existing) => existing.name === v.name));
  if (clashing !== undefined)
    return {
      outcome: 'deny',
      reason: `the pod already has a volume named ${String(clashing.name)}, which baton reserves`,
    };
  if (pod.spec.volumes === undefined) patch.push({ op: 'add', path: '/spec/volumes', value: volumes });
  else for (const volume of volumes) patch.push({ op: 'add', path: '/spec/volumes/-', value: volume });

  const annotations: Record<string, string> = { [ANNOTATION.status]: 'injected', ...identity?.annotations };
  if (authz) annotations[ISTIO_EXCLUDE_OUTBOUND_PORTS] = excludedPorts(pod, controlPlanePorts(template));
  patch.push(
    ...metadataPatch(pod, {
      annotations,
      labels: { 'baton.dev/service': service, [DATA_PLANE_LABEL]: settings.dataPlane },
    }),
  );
  return { outcome: 'inject', serviceAccount, service, patch, warnings };
}

function alreadyInjected(pod: Pod): boolean {
  const all: readonly Container[] = [...pod.spec.containers, ...(pod.spec.initContainers ?? [])];
  return all.some(
    (c) => c.name === SIDECAR_CONTAINER_NAME || c.name === AUTHZ_CONTAINER_NAME || c.name === HELPER_CONTAINER_NAME,
  );
}

/** The ports Istio leaves to baton authz, added to any the pod already excludes. */
function excludedPorts(pod: Pod, ports: readonly number[]): string {
  const existing = (pod.metadata?.annotations?.[ISTIO_EXCLUDE_OUTBOUND_PORTS] ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  return [...new Set([...existing, ...ports.map(String)])].join(',');
}

function envPatch(
  container: Container,
  index: number,
  additions: ReturnType<typeof appEnv>,
  warnings: string[],
): JsonPatchAdd[] {
  const present = new Set((container.env ?? []).map((e) => e.name));
  const missing = additions.filter((e) => {
    if (!present.has(e.name)) return true;
    warnings.push(`container ${container.name} already sets ${e.name}; baton left it as it is`);
    return false;
  });
  if (missing.length === 0) return [];
  const base = `/spec/containers/${index}/env`;
  if (container.env === undefined) return [{ op: 'add', path: base, value: missing }];
  return missing.map((value) => ({ op: 'add', path: `${base}/-`, value }));
}

function metadataPatch(pod: Pod, fields: Record<'annotations' | 'labels', Record<string, string>>): JsonPatchAdd[] {
  if (pod.metadata === undefined) return [{ op: 'add', path: '/metadata', value: fields }];
  const metadata = pod.metadata;
  return (['annotations', 'labels'] as const).flatMap((field): JsonPatchAdd[] => {
    if (metadata[field] === undefined) return [{ op: 'add', path: `/metadata/${field}`, value: fields[field] }];
    // "add" on an existing member replaces it (RFC 6902 §4.1): an author's value never survives.
    return Object.entries(fields[field]).map(([key, value]) => ({
      op: 'add',
      path: `/metadata/${field}/${escapePointer(key)}`,
      value,
    }));
  });
}

// RFC 6901 §3: "~" and "/" in a reference token are written "~0" and "~1".
function escapePointer(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}
