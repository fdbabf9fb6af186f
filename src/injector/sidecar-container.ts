/**
 * The injected sidecar as a Kubernetes native sidecar: an init container with
 * `restartPolicy: Always` (KEP-753, Kubernetes ≥ 1.29), so it starts before
 * the app, stays up while the app runs, and stops after it. Its settings
 * arrive as `BATON_*` variables; no config file is mounted. In mtls mode it
 * reads its X509-SVID from the identity volume (identity-layout.ts) and
 * proves who it is to the STS with it; no client secret reaches the pod.
 */
import { sidecarRedisUser } from '../redis/config.ts';
import type { InjectionSettings } from './annotations.ts';
import type { KubernetesExternalIssuer, SidecarTemplate } from './config.ts';
import { IDENTITY_DIR, IDENTITY_VOLUME, type IdentityLayout } from './identity-layout.ts';
import type { Container, ContainerPort, EnvVar } from './kubernetes-types.ts';
import { restrictedSecurityContext } from './security-context.ts';

export const SIDECAR_CONTAINER_NAME = 'baton-sidecar';
export const INBOUND_PORT_NAME = 'baton-inbound';
export const ADMIN_PORT_NAME = 'baton-admin';
export const PLAINTEXT_PORT_NAME = 'baton-plaintext';
export const POLICY_KEY_VOLUME = 'baton-policy-key';
export const TMP_VOLUME = 'baton-tmp';
export const POLICY_STATE_VOLUME = 'baton-policy-state';
export const INTROSPECTION_VOLUME = 'baton-introspection';
export const INTROSPECTION_DIR = '/etc/baton/introspection';
/** Where the sidecar keeps the newest policy version it accepted (policy.stateFile). */
export const POLICY_STATE_DIR = '/var/lib/baton/policy-state';
export const POLICY_STATE_FILE = `${POLICY_STATE_DIR}/policy-state.json`;
export const REDIS_VOLUME = 'baton-redis';
const REDIS_DIR = '/etc/baton/redis';
export const POLICY_KEY_DIR = '/etc/baton/policy';
export const POLICY_KEY_FILE = 'policy-signing.pub.pem';

export interface Workload {
  /** The pod's ServiceAccount: its Secrets (client secret, Redis) are named after it, in its namespace. */
  readonly serviceAccount: string;
  /**
   * The service name in the call graph and the STS client id: the
   * ServiceAccount, qualified by the pod's namespace when that is not the
   * mesh's home (`orders.shop`; src/core/service-name.ts).
   */
  readonly service: string;
}

/** `identity` is the pod's identity layout in mtls mode, undefined in plaintext mode. */
export function sidecarContainer(
  template: SidecarTemplate,
  settings: InjectionSettings,
  workload: Workload,
  identity: IdentityLayout | undefined,
): Container {
  return batonContainer(template, {
    name: SIDECAR_CONTAINER_NAME,
    args: ['sidecar'],
    ports: [
      { name: INBOUND_PORT_NAME, containerPort: settings.inboundPort, protocol: 'TCP' },
      ...(identity !== undefined && settings.plaintextPort !== undefined
        ? [{ name: PLAINTEXT_PORT_NAME, containerPort: settings.plaintextPort, protocol: 'TCP' }]
        : []),
      { name: ADMIN_PORT_NAME, containerPort: settings.adminPort, protocol: 'TCP' },
    ],
    env: sidecarEnv(template, settings, workload, identity),
    mounts: [
      // The Redis password and the seal key: in this container only, never in the app's (issue #14);
      // in plaintext mode only: in mtls mode exchanged tokens are bound to this pod and never shared.
      ...(template.redis === undefined || identity !== undefined
        ? []
        : [{ name: REDIS_VOLUME, mountPath: REDIS_DIR, readOnly: true }]),
      // The identity, and the introspection client secret: in this container only, like the Redis secret.
      ...credentialMounts(template, identity),
    ],
  });
}

/**
 * A baton container as the injector adds it (the sidecar's, `baton authz`'s): the template's image and
 * resources, probes on the admin port, Pod Security Standards "restricted" whatever the pod itself asks
 * for, and the policy key, /tmp and the policy state mounted, then the container's own `mounts`.
 */
export function batonContainer(
  template: SidecarTemplate,
  own: {
    readonly name: string;
    readonly args: readonly string[];
    readonly ports: ContainerPort[];
    readonly env: EnvVar[];
    readonly mounts: ReadonlyArray<{ name: string; mountPath: string; readOnly?: boolean }>;
  },
): Container {
  const probe = (path: string, extra: Record<string, number>) => ({
    httpGet: { path, port: ADMIN_PORT_NAME },
    ...extra,
  });
  return {
    name: own.name,
    image: template.image,
    imagePullPolicy: template.imagePullPolicy,
    restartPolicy: 'Always',
    args: [...own.args],
    ports: own.ports,
    env: own.env,
    // Startup gates the app containers: they start only once baton has a verified policy.
    startupProbe: probe('/readyz', { periodSeconds: 1, failureThreshold: 120, timeoutSeconds: 2 }),
    readinessProbe: probe('/readyz', { periodSeconds: 5, failureThreshold: 2, timeoutSeconds: 2 }),
    livenessProbe: probe('/livez', { periodSeconds: 10, failureThreshold: 3, timeoutSeconds: 2 }),
    resources: { requests: { ...template.requests }, limits: { ...template.limits } },
    securityContext: restrictedSecurityContext(template.runAsUser),
    volumeMounts: [
      { name: POLICY_KEY_VOLUME, mountPath: POLICY_KEY_DIR, readOnly: true },
      { name: TMP_VOLUME, mountPath: '/tmp' },
      { name: POLICY_STATE_VOLUME, mountPath: POLICY_STATE_DIR },
      ...own.mounts,
    ],
  };
}

function sidecarEnv(
  template: SidecarTemplate,
  settings: InjectionSettings,
  workload: Workload,
  identity: IdentityLayout | undefined,
): EnvVar[] {
  const env: EnvVar[] = [
    literal('BATON_SERVICE', workload.service),
    literal('BATON_TRANSPORT__MODE', template.transport.mode),
    literal('BATON_HOST', '0.0.0.0'),
    literal('BATON_INBOUND__PORT', settings.inboundPort),
    literal('BATON_INBOUND__APP', `http://127.0.0.1:${settings.appPort}`),
    literal('BATON_INBOUND__FORWARD_TOKEN', settings.forwardToken),
    literal('BATON_OUTBOUND__PORT', settings.outboundPort),
    literal('BATON_OUTBOUND__DEFAULT_UPSTREAM_PORT', template.defaultUpstreamPort),
    literal('BATON_ADMIN__PORT', settings.adminPort),
    literal('BATON_STS__ISSUER', template.stsIssuer),
    literal('BATON_STS__CLIENT_ID', workload.service),
    ...stsCredentialEnv(template, workload, identity),
    literal('BATON_POLICY__URL', template.policyUrl),
    literal('BATON_POLICY__PUBLIC_KEY', `${POLICY_KEY_DIR}/${POLICY_KEY_FILE}`),
    // A restarted sidecar refuses a replayed older signed policy (docs/policy-server.md, "Replay").
    literal('BATON_POLICY__STATE_FILE', POLICY_STATE_FILE),
    literal('BATON_SHUTDOWN__GRACE_MS', template.terminationDrainMs),
    literal('OTEL_SERVICE_NAME', workload.service),
  ];
  if (identity !== undefined) env.push(...identityEnv(template, settings, identity));
  if (template.externalIssuers.length > 0)
    env.push(literal('BATON_EXTERNAL_ISSUERS', JSON.stringify(sidecarExternalIssuers(template.externalIssuers))));
  // The Redis tier serves plaintext mode only: in mtls mode exchanged tokens are bound to this pod's certificate.
  if (template.redis !== undefined && identity === undefined) {
    env.push(
      literal('BATON_REDIS__URL', template.redis),
      literal('BATON_REDIS__USERNAME', sidecarRedisUser(workload.service)),
      literal('BATON_REDIS__PASSWORD_FILE', `${REDIS_DIR}/password`),
      literal('BATON_REDIS__SEAL_KEY_FILE', `${REDIS_DIR}/seal-key`),
    );
  }
  if (template.otlpEndpoint !== undefined) env.push(literal('OTEL_EXPORTER_OTLP_ENDPOINT', template.otlpEndpoint));
  if (settings.logLevel !== undefined) env.push(literal('BATON_LOG_LEVEL', settings.logLevel));
  return env;
}

/**
 * The sidecar's `externalIssuers` from the injector's: the same entries less
 * `discovery` (the sidecar discovers whenever jwksUri is unset), with an
 * introspection secret read from the mounted Secret's file.
 */
export function sidecarExternalIssuers(issuers: readonly KubernetesExternalIssuer[]): Array<Record<string, unknown>> {
  return issuers.map(({ discovery: _discovery, introspection, ...issuer }) => {
    if (introspection === undefined) return { ...issuer };
    const { clientSecretFrom, ...rest } = introspection;
    return {
      ...issuer,
      introspection: { ...rest, clientSecretFile: `${INTROSPECTION_DIR}/${introspectionPath(clientSecretFrom)}` },
    };
  });
}

/** A secret's file under INTROSPECTION_DIR: a folder per Secret, so several introspecting issuers may each use a key of the same name. */
function introspectionPath(from: { readonly secretName: string; readonly key: string }): string {
  return `${from.secretName}/${from.key}`;
}

/** The read-only mounts of a baton container's own credentials: its workload identity (mtls mode) and the introspection client secrets. */
export function credentialMounts(
  template: SidecarTemplate,
  identity: IdentityLayout | undefined,
): { name: string; mountPath: string; readOnly: boolean }[] {
  return [
    ...(identity === undefined ? [] : [{ name: IDENTITY_VOLUME, mountPath: IDENTITY_DIR, readOnly: true }]),
    ...(introspectionSecrets(template).length === 0
      ? []
      : [{ name: INTROSPECTION_VOLUME, mountPath: INTROSPECTION_DIR, readOnly: true }]),
  ];
}

/** The introspecting issuers' Secrets and keys, each once, in config order. */
function introspectionSecrets(
  template: SidecarTemplate,
): ReadonlyArray<{ readonly secretName: string; readonly key: string }> {
  const byPath = new Map<string, { readonly secretName: string; readonly key: string }>();
  for (const issuer of template.externalIssuers) {
    const from = issuer.introspection?.clientSecretFrom;
    if (from !== undefined && !byPath.has(introspectionPath(from))) byPath.set(introspectionPath(from), from);
  }
  return [...byPath.values()];
}

export const literal = (name: string, value: string | number | boolean): EnvVar => ({ name, value: String(value) });

export function stsCredentialEnv(
  template: SidecarTemplate,
  workload: Workload,
  identity: IdentityLayout | undefined,
): EnvVar[] {
  // mtls: the certificate is the credential (RFC 8705 §2.1), so no secret is mounted.
  if (identity !== undefined) return [literal('BATON_STS__AUTH_METHOD', 'tls_client_auth')];
  // plaintext: the credential is named after the ServiceAccount, so identity and
  // secret follow one object: whoever may run pods as that account (namespace
  // RBAC) may act as that service, the same boundary as the certificate's.
  return [
    literal('BATON_STS__AUTH_METHOD', 'client_secret_basic'),
    {
      name: 'BATON_STS__CLIENT_SECRET',
      valueFrom: {
        secretKeyRef: { name: `${template.clientSecretPrefix}${workload.serviceAccount}`, key: 'clientSecret' },
      },
    },
  ];
}

/** The contract's transport, identity and spiffe keys (docs/identity.md), as BATON_* variables. */
function identityEnv(template: SidecarTemplate, settings: InjectionSettings, identity: IdentityLayout): EnvVar[] {
  const env: EnvVar[] = [
    ...workloadIdentityEnv(template, identity),
    literal('BATON_INBOUND__CLIENT_CERTIFICATE', settings.clientCertificate),
  ];
  if (settings.plaintextPort !== undefined) env.push(literal('BATON_INBOUND__PLAINTEXT_PORT', settings.plaintextPort));
  return env;
}

/** The workload certificate's files, the SPIFFE rule and the control plane's IDs: the same keys in the sidecar and baton authz. */
export function workloadIdentityEnv(template: SidecarTemplate, identity: IdentityLayout): EnvVar[] {
  const env: EnvVar[] = [
    literal('BATON_IDENTITY__CERT_FILE', identity.files.certFile),
    literal('BATON_IDENTITY__KEY_FILE', identity.files.keyFile),
    literal('BATON_IDENTITY__BUNDLE_FILE', identity.files.bundleFile),
    literal('BATON_SPIFFE__TRUST_DOMAIN', template.spiffe.trustDomain),
    literal('BATON_SPIFFE__NAMESPACE', template.spiffe.namespace),
    literal('BATON_SPIFFE__TEMPLATE', template.spiffe.template),
  ];
  if (Object.keys(template.spiffe.ids).length > 0)
    env.push(literal('BATON_SPIFFE__IDS', JSON.stringify(template.spiffe.ids)));
  if (template.stsSpiffeId !== undefined) env.push(literal('BATON_STS__SPIFFE_ID', template.stsSpiffeId));
  if (template.policySpiffeId !== undefined) env.push(literal('BATON_POLICY__SPIFFE_ID', template.policySpiffeId));
  return env;
}

/** What every app container is told: where its sidecar's outbound port is, and a proxy setting when asked. */
export function appEnv(settings: InjectionSettings): EnvVar[] {
  const outbound = `http://127.0.0.1:${settings.outboundPort}`;
  const env: EnvVar[] = [{ name: 'BATON_OUTBOUND', value: outbound }];
  if (settings.httpProxy) {
    // Both spellings: curl and Go read lower case, many Node and Java clients upper case. Loopback (the app's own
    // port, the sidecar's admin port) is never proxied. Node's own fetch and http read them only with
    // NODE_USE_ENV_PROXY=1 (Node 24); fetch then opens CONNECT tunnels, which the outbound port reads (docs/clients.md).
    const noProxy = 'localhost,127.0.0.1,::1';
    env.push(
      { name: 'HTTP_PROXY', value: outbound },
      { name: 'http_proxy', value: outbound },
      { name: 'NO_PROXY', value: noProxy },
      { name: 'no_proxy', value: noProxy },
      { name: 'NODE_USE_ENV_PROXY', value: '1' },
    );
  }
  return env;
}

export function sidecarVolumes(
  template: SidecarTemplate,
  workload: Workload,
  identity: IdentityLayout | undefined,
  dataPlane: 'sidecar' | 'authz' = 'sidecar',
): Array<Record<string, unknown>> {
  return [
    {
      name: POLICY_KEY_VOLUME,
      configMap: { name: template.meshConfigMap, items: [{ key: POLICY_KEY_FILE, path: POLICY_KEY_FILE }] },
    },
    { name: TMP_VOLUME, emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } },
    // The pod's lifetime: it outlives a restart of the sidecar container, not the pod's deletion.
    { name: POLICY_STATE_VOLUME, emptyDir: { sizeLimit: '1Mi' } },
    // Named after the ServiceAccount like the client secret; not optional: without it the sidecar would not start anyway.
    ...(template.redis === undefined || identity !== undefined || dataPlane === 'authz'
      ? []
      : [
          {
            name: REDIS_VOLUME,
            secret: {
              secretName: `${template.redisSecretPrefix}${workload.serviceAccount}`,
              items: [
                { key: 'password', path: 'password' },
                { key: 'seal-key', path: 'seal-key' },
              ],
            },
          },
        ]),
    ...(identity?.volumes ?? []),
    ...(introspectionVolume(template) ?? []),
  ];
}

function introspectionVolume(template: SidecarTemplate): Array<Record<string, unknown>> | undefined {
  const secrets = introspectionSecrets(template);
  if (secrets.length === 0) return undefined;
  // One volume, a file per Secret and key. Not optional: a sidecar told to introspect without its secret would refuse to start anyway; the pod says why.
  const sources = secrets.map((from) => ({
    secret: { name: from.secretName, items: [{ key: from.key, path: introspectionPath(from) }] },
  }));
  return [{ name: INTROSPECTION_VOLUME, projected: { sources } }];
}
