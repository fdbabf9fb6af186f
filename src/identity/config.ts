/**
 * Schema pieces for workload identity, shared by the sidecar, the STS and
 * the policy server: where the X509-SVID files are, and the rule that maps
 * SPIFFE IDs to service names (docs/identity.md). Defaults are the file
 * names csi-driver-spiffe writes and the trust domain it defaults to.
 */
import { type Static, Type } from '@sinclair/typebox';
import { Dns1123Label, Milliseconds, SpiffeIdText } from '../config/atoms.ts';

export const DEFAULT_IDENTITY_DIR = '/var/run/secrets/spiffe.io';

/** File names per layout: what each agent writes into the pod (csi-driver-spiffe's defaults; spiffe-helper's README example). */
export const LAYOUTS = {
  'csi-driver-spiffe': { cert: 'tls.crt', key: 'tls.key', bundle: 'ca.crt' },
  'spiffe-helper': { cert: 'svid.pem', key: 'svid_key.pem', bundle: 'svid_bundle.pem' },
} as const;
export type Layout = keyof typeof LAYOUTS;

export const WorkloadIdentityConfigSchema = Type.Object(
  {
    certFile: Type.String({
      minLength: 1,
      default: `${DEFAULT_IDENTITY_DIR}/tls.crt`,
      description: 'PEM certificate chain, leaf first (csi-driver-spiffe tls.crt; spiffe-helper svid.pem)',
    }),
    keyFile: Type.String({
      minLength: 1,
      default: `${DEFAULT_IDENTITY_DIR}/tls.key`,
      description: 'PEM private key of the leaf (tls.key; svid_key.pem)',
    }),
    bundleFile: Type.String({
      minLength: 1,
      default: `${DEFAULT_IDENTITY_DIR}/ca.crt`,
      description: 'PEM trust bundle of the trust domain (ca.crt; svid_bundle.pem)',
    }),
    pollIntervalMs: Type.Integer({
      minimum: 100,
      default: 1000,
      description: 'how often the files are re-read to catch a rotation fs.watch missed',
    }),
    nearExpiryFraction: Type.Number({
      exclusiveMinimum: 0,
      maximum: 1,
      default: 1 / 6,
      description: 'below this share of its lifetime left, readiness reports the certificate as near expiry',
    }),
  },
  { additionalProperties: false, default: {} },
);
export type WorkloadIdentityConfig = Static<typeof WorkloadIdentityConfigSchema>;

export const SpiffeMappingConfigSchema = Type.Object(
  {
    trustDomain: Type.String({
      pattern: '^[a-z0-9._-]{1,255}$',
      default: 'cluster.local',
      description: 'the SPIFFE trust domain (lowercase letters, digits, . - _)',
    }),
    namespace: Type.String({
      ...Dns1123Label(
        'the home namespace: its services are named unqualified (orders), those of any other namespace service.namespace (orders.shop)',
      ),
      default: 'default',
    }),
    template: Type.String({
      minLength: 2,
      default: '/ns/{namespace}/sa/{service}',
      description:
        'the SPIFFE ID path of a service, with exactly one {service} segment and at most one {namespace} segment',
    }),
    ids: Type.Record(Type.String(), SpiffeIdText, {
      default: {},
      description: 'service name (orders, orders.shop) → SPIFFE ID, overriding the template',
    }),
  },
  { additionalProperties: false, default: {} },
);
export type SpiffeMappingConfig = Static<typeof SpiffeMappingConfigSchema>;

/**
 * `transport.mode`: `mtls` (the default) puts every mesh hop on mutual TLS
 * with the workload identity above; `plaintext` is for loopback development
 * or behind a mesh that already does mTLS, and says so loudly at start.
 */
export const TransportConfigSchema = Type.Object(
  {
    mode: Type.Union([Type.Literal('mtls'), Type.Literal('plaintext')], {
      default: 'mtls',
      description: 'mtls (every mesh hop on mutual TLS) or plaintext (loopback development only)',
    }),
  },
  { additionalProperties: false, default: {} },
);
export type TransportConfig = Static<typeof TransportConfigSchema>;

/**
 * How long opening a connection may take before the call fails: the
 * sidecar's connections to its app, to upstream sidecars and, in mtls mode,
 * to the STS and the policy server.
 */
export const ConnectTimeoutMs = Milliseconds(
  5_000,
  'how long opening a connection may take: to the app, to upstreams, and in mtls mode to the STS and the policy server; then 502 or 503',
);
export const DEFAULT_CONNECT_TIMEOUT_MS = ConnectTimeoutMs.default as number;
/** Idle keep-alive connections are closed before a Node.js peer's 5 s keepAliveTimeout would close them under us. */
export const KEEP_ALIVE_TIMEOUT_MS = 4_000;
