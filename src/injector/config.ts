/**
 * The injector's configuration (docs/kubernetes.md): where it listens, its
 * TLS files, and what the injected sidecar looks like and talks to. Every
 * key is also a `BATON_*` variable (`sidecar.image` → `BATON_SIDECAR__IMAGE`),
 * which is how the Helm chart and the kustomize base set it.
 */
import { type Static, Type } from '@sinclair/typebox';
import { HttpUrl, ListenPort, LogLevel, LogLevelChoice, Milliseconds, Port, SpiffeIdText } from '../config/atoms.ts';
import { RedisUrl } from '../redis/config.ts';
import { ConfigError } from '../config/config-error.ts';
import { SpiffeMappingConfigSchema } from '../identity/config.ts';

// Kubernetes resource quantities: "100m", "64Mi", "1".
const Quantity = Type.String({ pattern: '^[0-9]+(\\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi)?$', description: 'a Kubernetes quantity such as 100m or 64Mi' });
const Image = (fallback: string, description: string) => Type.String({ minLength: 1, default: fallback, description });

/** Where a pod's X509-SVID comes from (docs/kubernetes.md, "Workload identity"). */
export const SVID_SOURCES = ['csi-driver-spiffe', 'spiffe-helper', 'spiffe-csi'] as const;
export type SvidSource = (typeof SVID_SOURCES)[number];

const resources = (fallback: { cpu: string; memory: string }) => Type.Object({ cpu: Quantity, memory: Quantity }, { additionalProperties: false, default: fallback });

export const InjectorConfigSchema = Type.Object(
  {
    host: Type.String({ default: '0.0.0.0', minLength: 1, description: 'bind address' }),
    port: ListenPort(8443),
    logLevel: LogLevel,
    tls: Type.Object(
      {
        cert: Type.String({ minLength: 1, description: 'path to the PEM certificate chain (cert-manager: tls.crt)' }),
        key: Type.String({ minLength: 1, description: 'path to the PEM private key (cert-manager: tls.key)' }),
        reloadIntervalMs: Milliseconds(5_000, 'how often the files are checked for a rotated certificate', { minimum: 50 }),
      },
      { additionalProperties: false },
    ),
    sidecar: Type.Object(
      {
        image: Type.String({ minLength: 1, default: 'ghcr.io/baton-dev/baton-mesh:0.1.0' }),
        imagePullPolicy: Type.Union([Type.Literal('Always'), Type.Literal('IfNotPresent'), Type.Literal('Never')], { default: 'IfNotPresent' }),
        inboundPort: Type.Integer({ ...Port("the sidecar's inbound port in the pod"), default: 7070 }),
        outboundPort: Type.Integer({ ...Port("the sidecar's outbound port in the pod"), default: 7071 }),
        adminPort: Type.Integer({ ...Port("the sidecar's admin port (health, metrics)"), default: 7072 }),
        appPort: Type.Integer({ ...Port('the app port when neither an annotation nor a containerPort names one'), default: 8080 }),
        defaultUpstreamPort: Type.Integer({ ...Port('the Service port other meshed services listen on (Service port 80 → targetPort baton-inbound)'), default: 80 }),
        stsIssuer: Type.String({ ...HttpUrl, default: 'https://baton-sts.baton-system.svc:7000' }),
        policyUrl: Type.String({ ...HttpUrl, default: 'https://baton-policy-server.baton-system.svc:7100' }),
        meshConfigMap: Type.String({ minLength: 1, default: 'baton-mesh', description: 'ConfigMap in the pod\'s namespace holding policy-signing.pub.pem' }),
        clientSecretPrefix: Type.String({ minLength: 1, default: 'baton-client-', description: 'plaintext mode only: Secret name prefix, <prefix><serviceAccount> holds clientSecret' }),
        transport: Type.Object(
          {
            mode: Type.Union([Type.Literal('mtls'), Type.Literal('plaintext')], {
              default: 'mtls',
              description: 'mtls: every hop over mutual TLS with workload certificates; plaintext: only behind a mesh that already encrypts and authenticates every hop',
            }),
          },
          { additionalProperties: false, default: {} },
        ),
        spiffe: SpiffeMappingConfigSchema,
        stsSpiffeId: Type.Optional({ ...SpiffeIdText, description: "the STS's SPIFFE ID when it is not the rule's ID for baton-sts (another namespace)" }),
        policySpiffeId: Type.Optional({ ...SpiffeIdText, description: "the policy server's SPIFFE ID when it is not the rule's ID for baton-policy-server" }),
        identity: Type.Object(
          {
            source: Type.Union(
              SVID_SOURCES.map((s) => Type.Literal(s)),
              { default: 'csi-driver-spiffe', description: 'where pods get their X509-SVID, unless the pod\'s baton.dev/svid-source annotation names another' },
            ),
            csiDriver: Type.String({ minLength: 1, default: 'spiffe.csi.cert-manager.io', description: "cert-manager csi-driver-spiffe's CSI driver name" }),
            spireCsiDriver: Type.String({ minLength: 1, default: 'csi.spiffe.io', description: 'the SPIFFE CSI driver name, which mounts the SPIRE agent socket' }),
            spireAgentSocketDir: Type.String({ pattern: '^/', default: '/run/spire/agent-sockets', description: 'spiffe-helper source: the node directory holding the SPIRE agent socket (a hostPath)' }),
            spireAgentSocketName: Type.String({ pattern: '^[^/]+$', default: 'spire-agent.sock', description: "the SPIRE agent socket's file name in that directory" }),
            helperImage: Image('ghcr.io/spiffe/spiffe-helper:0.11.0', 'the spiffe-helper image'),
          },
          { additionalProperties: false, default: {} },
        ),
        externalIssuers: Type.Array(
          Type.Object({ issuer: HttpUrl, jwksUri: Type.Optional(HttpUrl), audience: Type.Optional(Type.String({ minLength: 1 })) }, { additionalProperties: false }),
          { default: [], description: 'the users\' identity providers; the call graph admits their tokens at entrypoints only' },
        ),
        redis: Type.Optional({ ...RedisUrl, description: 'a redis:// URL (no credentials) for the shared token cache' }),
        redisSecretPrefix: Type.String({ minLength: 1, default: 'baton-redis-', description: 'Secret name prefix: <prefix><serviceAccount> holds password and seal-key, mounted into the sidecar container only' }),
        otlpEndpoint: Type.Optional(HttpUrl),
        logLevel: Type.Optional(LogLevelChoice("the injected sidecar's logLevel, unless the pod's baton.dev/log-level annotation names one")),
        requests: resources({ cpu: '50m', memory: '64Mi' }),
        limits: resources({ cpu: '1', memory: '256Mi' }),
        runAsUser: Type.Integer({ minimum: 1, default: 10001 }),
        terminationDrainMs: Milliseconds(10_000, "the sidecar's shutdown.graceMs"),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
);

export type InjectorConfig = Readonly<Static<typeof InjectorConfigSchema>>;
export type SidecarTemplate = InjectorConfig['sidecar'];

/** Rules across fields: in mtls mode the STS and policy server are reached over TLS, never in the clear. */
export function checkInjectorConfig(config: InjectorConfig, source: string): void {
  if (config.sidecar.transport.mode !== 'mtls') return;
  for (const key of ['stsIssuer', 'policyUrl'] as const) {
    if (!config.sidecar[key].startsWith('https://')) throw new ConfigError(source, `sidecar.${key}`, 'an https:// URL in mtls mode', config.sidecar[key]);
  }
}
