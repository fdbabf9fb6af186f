/**
 * `baton authz`'s configuration (docs/authz.md): one service, the ports the
 * proxy asks on (Envoy's gRPC ext_authz API, and HTTP for Envoy's HTTP
 * ext_authz and nginx's auth_request), and the same STS, policy, issuer,
 * exchange and identity blocks as the sidecar's, taken from the sidecar's
 * schema so a key means the same thing in both. Validated once by
 * `loadConfig` into a frozen object.
 */
import { type Static, Type } from '@sinclair/typebox';
import { ListenPort, Milliseconds, Seconds } from '../config/atoms.ts';
import { ConfigError } from '../config/config-error.ts';
import { loadConfig, type LoadOptions } from '../config/load.ts';
import { checkMeshClientConfig, SidecarConfigSchema } from '../sidecar/config.ts';

const sidecar = SidecarConfigSchema.properties;

export const AuthzConfigSchema = Type.Object(
  {
    service: {
      ...sidecar.service,
      description:
        'the service this authorizer decides for, as the call-graph policy spells it (one baton authz per workload, like the sidecar)',
    },
    host: Type.String({
      default: '127.0.0.1',
      minLength: 1,
      description:
        'the bind address of the check ports (grpc, http); keep it on loopback: whoever reaches them can name any peer and receive tokens for this service',
    }),
    logLevel: sidecar.logLevel,
    connectTimeoutMs: sidecar.connectTimeoutMs,
    grpc: Type.Object(
      {
        enabled: Type.Boolean({
          default: true,
          description: "serve Envoy's gRPC external authorization API (envoy.service.auth.v3.Authorization/Check)",
        }),
        port: ListenPort(7073),
        maxMessageBytes: Type.Integer({
          minimum: 16_384,
          maximum: 16_777_216,
          default: 1_048_576,
          description: 'the largest CheckRequest read; a larger one is refused (RESOURCE_EXHAUSTED: the proxy denies)',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    http: Type.Object(
      {
        enabled: Type.Boolean({
          default: true,
          description: "serve Envoy's HTTP ext_authz service and nginx auth_request",
        }),
        port: ListenPort(7074),
        socket: Type.Optional(
          Type.String({
            pattern: '^/[^\\0]+$',
            description:
              'a Unix domain socket path to serve the HTTP check on instead of host:port (nginx: server unix:PATH), cheaper than loopback TCP; keep it in a directory only the proxy and baton share (an emptyDir)',
          }),
        ),
        pathPrefix: Type.String({
          pattern: '^/[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*$',
          default: '/baton-authz',
          description:
            'checks are asked at <pathPrefix>/inbound<original path> and <pathPrefix>/outbound<original path>',
        }),
        cacheMaxAgeSeconds: Seconds(
          5,
          "the most an allowed answer tells a proxy cache (nginx proxy_cache) to reuse it; never past the token's exp; 0: answers are never cached",
          { minimum: 0, maximum: 300 },
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    admin: Type.Object(
      {
        host: Type.String({
          default: '127.0.0.1',
          minLength: 1,
          description: 'the bind address of the admin port (0.0.0.0 in Kubernetes, for probes and scrapes)',
        }),
        port: ListenPort(7075, 'the admin port (health, readiness, metrics)'),
      },
      { additionalProperties: false, default: {} },
    ),
    inbound: Type.Object(
      {
        forwardToken: Type.Boolean({
          default: false,
          description: 'leave the verified Authorization header on the request to the app instead of removing it',
        }),
        peerCertificate: Type.Union([Type.Literal('optional'), Type.Literal('required'), Type.Literal('ignore')], {
          default: 'optional',
          description:
            "mtls mode: required: a certificate-bound token is accepted only when the proxy passed the peer's certificate and it is the one in cnf (RFC 8705 §3); optional: the certificate is checked when passed, else the token's caller must be the service the peer's principal maps to; ignore: the principal only, for a proxy whose certificates are not the ones tokens are bound to (Istio's own)",
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    outbound: Type.Object(
      {
        domainSuffixes: Type.Array(Type.String({ pattern: '^(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$' }), {
          default: ['.svc.cluster.local', '.svc'],
          description:
            'DNS suffixes cut from an outbound Host before it is read as a service name (payments.shop.svc.cluster.local is payments.shop)',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    maxConcurrent: Type.Integer({
      minimum: 1,
      default: 1024,
      description: 'checks in flight before answering 503 (the proxy denies)',
    }),
    subjectShare: Type.Number({
      exclusiveMinimum: 0,
      maximum: 1,
      default: 0.25,
      description: 'fraction of maxConcurrent one user may hold before 429 (1: no bound)',
    }),
    sts: sidecar.sts,
    policy: sidecar.policy,
    externalIssuers: sidecar.externalIssuers,
    exchange: sidecar.exchange,
    jwks: sidecar.jwks,
    cache: Type.Object(
      {
        maxEntries: Type.Integer({ minimum: 1, default: 10_000, description: 'exchanged tokens kept in process' }),
        verifiedMaxEntries: Type.Integer({
          minimum: 1,
          default: 10_000,
          description: 'verified tokens kept in process',
        }),
        decisionMaxEntries: Type.Integer({
          minimum: 0,
          default: 10_000,
          description:
            'decisions kept in process, keyed by token digest, peer, method, path, policy version, direction and target (0: none)',
        }),
        decisionTtlSeconds: Seconds(
          30,
          "the longest a decision is reused; never past the token's exp, never under another policy version",
          { minimum: 1, maximum: 3600 },
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    limits: Type.Object(
      {
        maxHeaderBytes: Type.Integer({
          minimum: 1024,
          default: 32_768,
          description:
            "http: the largest check request head in bytes (it carries the original request's headers); a larger one is refused with 431",
        }),
        maxConnections: Type.Integer({
          minimum: 1,
          default: 4_096,
          description: 'http: connections open at once; more are closed at accept',
        }),
        headTimeoutMs: Milliseconds(
          10_000,
          'http: how long a check request head may take to arrive once its first byte has (then 408)',
        ),
        keepAliveTimeoutMs: Milliseconds(60_000, "http: how long a proxy's connection may sit idle between checks"),
        maxTokenBytes: sidecar.limits.properties.maxTokenBytes,
        maxActDepth: sidecar.limits.properties.maxActDepth,
        clockToleranceSeconds: sidecar.limits.properties.clockToleranceSeconds,
      },
      { additionalProperties: false, default: {} },
    ),
    transport: sidecar.transport,
    identity: sidecar.identity,
    spiffe: sidecar.spiffe,
    telemetry: sidecar.telemetry,
    shutdown: Type.Object(
      { graceMs: Milliseconds(10_000, 'how long checks in flight may take to finish after SIGTERM') },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
);

export type AuthzConfig = Readonly<Static<typeof AuthzConfigSchema>>;

export function loadAuthzConfig(options: LoadOptions): AuthzConfig {
  const config = loadConfig(AuthzConfigSchema, options);
  checkAuthzConfig(config, options.file ?? '(no config file)');
  return config;
}

/** The sidecar's rules on the shared blocks, and the authorizer's own: a port to ask on, ports that differ. */
export function checkAuthzConfig(config: AuthzConfig, source: string): void {
  checkMeshClientConfig(config, source);
  if (!config.grpc.enabled && !config.http.enabled)
    throw new ConfigError(
      source,
      'grpc.enabled',
      'grpc or http (or both) enabled: a proxy needs a port to ask on',
      'both disabled',
    );
  const ports = [
    config.grpc.enabled ? config.grpc.port : 0,
    config.http.enabled && config.http.socket === undefined ? config.http.port : 0,
    config.admin.port,
  ].filter((p) => p !== 0);
  if (new Set(ports).size !== ports.length)
    throw new ConfigError(source, 'http.port', 'the grpc, http and admin ports to differ', ports.join(', '));
}
