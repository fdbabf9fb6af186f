/**
 * The injector's other data plane (docs/istio.md): a pod that already runs
 * a proxy (Istio's istio-proxy) gets `baton authz` beside it instead of
 * baton's sidecar. The proxy keeps the pod's traffic and asks baton about
 * every request (Istio's CUSTOM AuthorizationPolicy inbound, the outbound
 * EnvoyFilter), over the pod's loopback; baton authz needs the same policy,
 * STS, issuers and workload certificate as the sidecar, and no app port.
 *
 * Like the sidecar it is a native sidecar (an init container with
 * `restartPolicy: Always`) configured by `BATON_*` variables, with the same
 * volumes less Redis (its exchanged tokens stay in process).
 */
import type { InjectionSettings } from './annotations.ts';
import type { SidecarTemplate } from './config.ts';
import type { IdentityLayout } from './identity-layout.ts';
import type { Container, EnvVar } from './kubernetes-types.ts';
import {
  ADMIN_PORT_NAME,
  batonContainer,
  credentialMounts,
  literal,
  POLICY_KEY_DIR,
  POLICY_KEY_FILE,
  POLICY_STATE_FILE,
  sidecarExternalIssuers,
  stsCredentialEnv,
  type Workload,
  workloadIdentityEnv,
} from './sidecar-container.ts';

export const AUTHZ_CONTAINER_NAME = 'baton-authz';
/** The pod label the Istio objects in deploy/istio/ select on. */
export const DATA_PLANE_LABEL = 'baton.dev/data-plane';
/**
 * Istio's annotation for outbound ports its iptables leave alone: baton
 * authz reaches the STS and the policy server over its own mTLS, checked by
 * SPIFFE ID; through istio-proxy its calls would themselves be checked by
 * the outbound ext_authz filter, which asks baton authz.
 */
export const ISTIO_EXCLUDE_OUTBOUND_PORTS = 'traffic.sidecar.istio.io/excludeOutboundPorts';

export function authzContainer(
  template: SidecarTemplate,
  settings: InjectionSettings,
  workload: Workload,
  identity: IdentityLayout | undefined,
): Container {
  return batonContainer(template, {
    name: AUTHZ_CONTAINER_NAME,
    args: ['authz'],
    // The check ports are on loopback, for the proxy in this pod only: not declared.
    ports: [{ name: ADMIN_PORT_NAME, containerPort: settings.adminPort, protocol: 'TCP' }],
    env: authzEnv(template, settings, workload, identity),
    mounts: credentialMounts(template, identity),
  });
}

function authzEnv(
  template: SidecarTemplate,
  settings: InjectionSettings,
  workload: Workload,
  identity: IdentityLayout | undefined,
): EnvVar[] {
  const env: EnvVar[] = [
    literal('BATON_SERVICE', workload.service),
    literal('BATON_TRANSPORT__MODE', template.transport.mode),
    // The check ports: loopback, where istio-proxy reaches them (deploy/istio/service-entry.yaml); the admin port for the kubelet.
    literal('BATON_HOST', '127.0.0.1'),
    literal('BATON_GRPC__PORT', template.authzGrpcPort),
    literal('BATON_HTTP__PORT', template.authzHttpPort),
    literal('BATON_ADMIN__HOST', '0.0.0.0'),
    literal('BATON_ADMIN__PORT', settings.adminPort),
    literal('BATON_INBOUND__FORWARD_TOKEN', settings.forwardToken),
    // istio-proxy presents Istio's workload certificates, not the one baton authz binds tokens to: the peer's principal is what counts.
    literal('BATON_INBOUND__PEER_CERTIFICATE', 'ignore'),
    literal('BATON_STS__ISSUER', template.stsIssuer),
    literal('BATON_STS__CLIENT_ID', workload.service),
    ...stsCredentialEnv(template, workload, identity),
    literal('BATON_POLICY__URL', template.policyUrl),
    literal('BATON_POLICY__PUBLIC_KEY', `${POLICY_KEY_DIR}/${POLICY_KEY_FILE}`),
    literal('BATON_POLICY__STATE_FILE', POLICY_STATE_FILE),
    literal('BATON_SHUTDOWN__GRACE_MS', template.terminationDrainMs),
    literal('OTEL_SERVICE_NAME', workload.service),
  ];
  if (identity !== undefined) env.push(...workloadIdentityEnv(template, identity));
  if (template.externalIssuers.length > 0)
    env.push(literal('BATON_EXTERNAL_ISSUERS', JSON.stringify(sidecarExternalIssuers(template.externalIssuers))));
  if (template.otlpEndpoint !== undefined) env.push(literal('OTEL_EXPORTER_OTLP_ENDPOINT', template.otlpEndpoint));
  if (settings.logLevel !== undefined) env.push(literal('BATON_LOG_LEVEL', settings.logLevel));
  return env;
}

/** The ports of the STS and the policy server, which baton authz reaches past istio-proxy. */
export function controlPlanePorts(template: SidecarTemplate): number[] {
  return [
    ...new Set(
      [template.stsIssuer, template.policyUrl].map((url) => {
        const parsed = new URL(url);
        return Number(parsed.port || (parsed.protocol === 'https:' ? 443 : 80));
      }),
    ),
  ];
}
