/**
 * The pod annotations a workload author may set. They choose ports and a few
 * switches; they never choose identity: the workload identity is the pod's
 * ServiceAccount, which the author cannot forge into another service's
 * Secret (docs/kubernetes.md, "Identity").
 */
import { LOG_LEVELS } from '../config/atoms.ts';
import { SVID_SOURCES, type SidecarTemplate, type SvidSource } from './config.ts';
import type { Pod } from './kubernetes-types.ts';

export const ANNOTATION = {
  inject: 'baton.dev/inject',
  status: 'baton.dev/status',
  appPort: 'baton.dev/app-port',
  inboundPort: 'baton.dev/inbound-port',
  outboundPort: 'baton.dev/outbound-port',
  adminPort: 'baton.dev/admin-port',
  httpProxy: 'baton.dev/http-proxy',
  forwardToken: 'baton.dev/forward-token',
  logLevel: 'baton.dev/log-level',
  svidSource: 'baton.dev/svid-source',
  clientCertificate: 'baton.dev/client-certificate',
  plaintextPort: 'baton.dev/plaintext-port',
  dataPlane: 'baton.dev/data-plane',
} as const;

/** Annotations that look like they set identity; reported and ignored. */
const IDENTITY_LOOKALIKES = [
  'baton.dev/service',
  'baton.dev/identity',
  'baton.dev/client-id',
  'baton.dev/service-account',
];

export interface InjectionSettings {
  readonly appPort: number;
  readonly inboundPort: number;
  readonly outboundPort: number;
  readonly adminPort: number;
  readonly httpProxy: boolean;
  readonly forwardToken: boolean;
  readonly logLevel: string | undefined;
  /** Where the pod's X509-SVID comes from. */
  readonly svidSource: SvidSource;
  /** Whether callers of the inbound port must present a certificate (an entrypoint behind an ingress outside the mesh may say optional). */
  readonly clientCertificate: 'required' | 'optional';
  /** A second, plaintext inbound listener for an entrypoint behind an ingress; external-IdP tokens only. */
  readonly plaintextPort: number | undefined;
  /** baton's sidecar, or `baton authz` for the proxy the pod already runs (docs/istio.md). */
  readonly dataPlane: 'sidecar' | 'authz';
  /** Admission warnings for the author (shown by kubectl). */
  readonly warnings: readonly string[];
}

export type SettingsResult =
  { readonly ok: true; readonly settings: InjectionSettings } | { readonly ok: false; readonly reason: string };

const LOG_LEVEL_NAMES: ReadonlySet<string> = new Set(LOG_LEVELS);

export function wantsInjection(pod: Pod): boolean {
  return pod.metadata?.annotations?.[ANNOTATION.inject] === 'true';
}

export function readSettings(pod: Pod, template: SidecarTemplate): SettingsResult {
  const annotations = pod.metadata?.annotations ?? {};
  const warnings: string[] = [];
  for (const name of IDENTITY_LOOKALIKES) {
    if (annotations[name] !== undefined)
      warnings.push(`${name} is ignored: baton derives the workload identity from the pod's ServiceAccount`);
  }
  const ports: Record<'appPort' | 'inboundPort' | 'outboundPort' | 'adminPort', number> & { plaintextPort?: number } = {
    appPort: firstContainerPort(pod) ?? template.appPort,
    inboundPort: template.inboundPort,
    outboundPort: template.outboundPort,
    adminPort: template.adminPort,
  };
  for (const key of ['appPort', 'inboundPort', 'outboundPort', 'adminPort', 'plaintextPort'] as const) {
    const raw = annotations[ANNOTATION[key]];
    if (raw === undefined) continue;
    const port = parsePort(raw);
    if (port === undefined)
      return {
        ok: false,
        reason: `annotation ${ANNOTATION[key]} must be a port number (1-65535), got ${JSON.stringify(raw.slice(0, 20))}`,
      };
    ports[key] = port;
  }
  const all = Object.values(ports);
  if (new Set(all).size !== all.length) {
    return {
      ok: false,
      reason: `the app port and the sidecar's inbound, outbound, admin and plaintext ports must all differ, got ${JSON.stringify(ports)}`,
    };
  }
  const dataPlane = annotations[ANNOTATION.dataPlane] ?? template.dataPlane;
  if (dataPlane !== 'sidecar' && dataPlane !== 'authz')
    return { ok: false, reason: `annotation ${ANNOTATION.dataPlane} must be "sidecar" or "authz"` };
  // The ports baton listens on in this pod: the sidecar's, or baton authz's admin and loopback check ports.
  const batonPorts =
    dataPlane === 'authz'
      ? [ports.adminPort, template.authzGrpcPort, template.authzHttpPort]
      : [
          ports.inboundPort,
          ports.outboundPort,
          ports.adminPort,
          ...(ports.plaintextPort === undefined ? [] : [ports.plaintextPort]),
        ];
  const taken = sidecarPortTakenByApp(pod, batonPorts);
  if (taken !== undefined)
    return {
      ok: false,
      reason: `container port ${taken} is one of the sidecar's ports; choose others with the baton.dev/*-port annotations`,
    };
  const flags: Record<'httpProxy' | 'forwardToken', boolean> = { httpProxy: false, forwardToken: false };
  for (const key of ['httpProxy', 'forwardToken'] as const) {
    const raw = annotations[ANNOTATION[key]];
    if (raw === undefined) continue;
    if (raw !== 'true' && raw !== 'false')
      return {
        ok: false,
        reason: `annotation ${ANNOTATION[key]} must be "true" or "false", got ${JSON.stringify(raw.slice(0, 20))}`,
      };
    flags[key] = raw === 'true';
  }
  const logLevel = annotations[ANNOTATION.logLevel];
  if (logLevel !== undefined && !LOG_LEVEL_NAMES.has(logLevel))
    return { ok: false, reason: `annotation ${ANNOTATION.logLevel} must be one of ${LOG_LEVELS.join(', ')}` };
  const svidSource = annotations[ANNOTATION.svidSource] ?? template.identity.source;
  if (!(SVID_SOURCES as readonly string[]).includes(svidSource))
    return { ok: false, reason: `annotation ${ANNOTATION.svidSource} must be one of ${SVID_SOURCES.join(', ')}` };
  const clientCertificate = annotations[ANNOTATION.clientCertificate] ?? 'required';
  if (clientCertificate !== 'required' && clientCertificate !== 'optional')
    return { ok: false, reason: `annotation ${ANNOTATION.clientCertificate} must be "required" or "optional"` };
  if (template.transport.mode === 'plaintext') {
    for (const key of ['svidSource', 'clientCertificate', 'plaintextPort'] as const) {
      if (annotations[ANNOTATION[key]] !== undefined)
        warnings.push(`${ANNOTATION[key]} is ignored: the mesh runs in plaintext mode`);
    }
  } else {
    // Said out loud: these two let callers without a mesh certificate in.
    if (clientCertificate === 'optional')
      warnings.push(
        'the inbound port accepts callers without a client certificate (baton.dev/client-certificate: optional)',
      );
    if (ports.plaintextPort !== undefined)
      warnings.push(
        `port ${ports.plaintextPort} listens in plaintext for external-IdP tokens only (baton.dev/plaintext-port)`,
      );
  }
  const { plaintextPort, ...meshPorts } = ports;
  return {
    ok: true,
    settings: {
      ...meshPorts,
      ...flags,
      logLevel: logLevel ?? template.logLevel,
      svidSource: svidSource as SvidSource,
      clientCertificate,
      plaintextPort,
      dataPlane,
      warnings,
    },
  };
}

function parsePort(raw: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(raw)) return undefined;
  const port = Number(raw);
  return port >= 1 && port <= 65535 ? port : undefined;
}

function firstContainerPort(pod: Pod): number | undefined {
  for (const container of pod.spec.containers) {
    for (const port of container.ports ?? []) {
      if ((port.protocol ?? 'TCP') === 'TCP') return port.containerPort;
    }
  }
  return undefined;
}

function sidecarPortTakenByApp(pod: Pod, sidecarPorts: readonly number[]): number | undefined {
  for (const container of [...pod.spec.containers, ...(pod.spec.initContainers ?? [])]) {
    for (const port of container.ports ?? []) {
      if (sidecarPorts.includes(port.containerPort)) return port.containerPort;
    }
  }
  return undefined;
}
