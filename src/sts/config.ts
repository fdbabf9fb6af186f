/**
 * `baton sts` configuration (docs/sts.md): validated once at the edge into a
 * frozen object. Cross-field rules TypeBox cannot say (a client needs a
 * credential, a policy needs a file or a URL) are checked by
 * `checkStsConfig`, which throws the same `ConfigError`.
 */
import { type Static, Type } from '@sinclair/typebox';
import { HttpUrl, ListenPort, LogLevel, Milliseconds, Seconds, SpiffeIdText } from '../config/atoms.ts';
import { ConfigError } from '../config/config-error.ts';
import { loadConfig, type LoadOptions } from '../config/load.ts';
import { SpiffeMappingConfigSchema, TransportConfigSchema, WorkloadIdentityConfigSchema } from '../identity/config.ts';
import { checkPolicySourceConfig, POLICY_SOURCE_FIELDS } from '../policy/distribution/config.ts';
import { StsRedisSchema } from '../redis/config.ts';
import { AdminPortConfigSchema, TelemetryConfigSchema } from '../telemetry/config.ts';
import {
  ClockToleranceSeconds,
  checkKeySourceConfig,
  KEY_SOURCE_DEFAULTS,
  KeySourceConfigSchema,
  MaxChainDepth,
} from '../token/config.ts';
import { checkExternalIssuers, ISSUER_PROFILE_FIELDS } from '../token/issuer-profile-config.ts';

export const SIGNING_ALGS = ['ES256', 'EdDSA', 'RS256'] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];

/**
 * How long a new signing key sits in `/jwks` before it signs. It must be at
 * least the verifiers' periodic JWKS refresh (`jwks.refreshIntervalMs`,
 * src/token/config.ts, 5 min by default) plus the `/jwks` max-age, so every
 * sidecar holds the key before the first token it signed arrives: 5 min + 1 min.
 */
export const DEFAULT_PREPUBLISH_SECONDS = KEY_SOURCE_DEFAULTS.refreshIntervalMs / 1000 + 60;

const Jwks = Type.Object(
  { keys: Type.Array(Type.Object({ kty: Type.String() }, { additionalProperties: true }), { minItems: 1 }) },
  { description: 'a JWK Set ({ keys: [...] })' },
);

const Client = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: 253, description: 'the client id: the service name it acts as' }),
    secret: Type.Optional(Type.String({ minLength: 16, description: 'a client secret of at least 16 characters' })),
    secretHash: Type.Optional(
      Type.String({ pattern: '^scrypt\\$', description: "an scrypt hash from 'baton sts hash-secret'" }),
    ),
    jwks: Type.Optional(Jwks),
    jwksUri: Type.Optional({ ...HttpUrl, description: 'an http(s) URL of the client JWK Set' }),
    scopes: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), { description: 'scopes the client may ask for in client_credentials' }),
    ),
    serviceAccount: Type.Optional(
      Type.String({
        pattern: '^[a-z0-9-]+/[a-z0-9.-]+$',
        description: 'a Kubernetes service account as namespace/name',
      }),
    ),
    tlsClientAuth: Type.Optional(
      Type.Boolean({
        description:
          "RFC 8705 tls_client_auth: the client's certificate is its credential, its SAN URI the SPIFFE ID the spiffe rule gives the client id",
      }),
    ),
    tlsClientAuthSanUri: Type.Optional(
      Type.String({
        ...SpiffeIdText,
        description: 'RFC 8705 tls_client_auth with this SPIFFE ID as the SAN URI, instead of the spiffe rule',
      }),
    ),
  },
  { additionalProperties: false },
);

/** One external identity provider as the STS trusts it; `discovery` is the STS's own key (the sidecar discovers whenever jwksUri is unset). */
export const StsExternalIssuerSchema = Type.Object(
  {
    issuer: Type.String({ minLength: 1, description: 'the issuer identifier (iss) of an external identity provider' }),
    jwksUri: Type.Optional({ ...HttpUrl, description: 'an http(s) URL of the issuer JWK Set' }),
    discovery: Type.Optional(Type.Boolean({ description: 'find jwks_uri from the issuer metadata' })),
    audience: Type.Optional(
      Type.String({ minLength: 1, description: 'the aud its tokens carry; default the presenting client id' }),
    ),
    ...ISSUER_PROFILE_FIELDS,
  },
  { additionalProperties: false },
);

export const StsConfigSchema = Type.Object(
  {
    issuer: Type.String({
      pattern: '^https?://[^/?#]+(/[^?#]*)?$',
      description: 'an http(s) URL without query or fragment (RFC 8414 §2)',
    }),
    host: Type.String({ minLength: 1, default: '127.0.0.1', description: 'the bind address (0.0.0.0 in Kubernetes)' }),
    port: ListenPort(7000),
    admin: AdminPortConfigSchema,
    tokenTtlSeconds: Seconds(
      300,
      'the lifetime of issued tokens, between 10 and 86400 seconds; never longer than the subject token has left',
      { minimum: 10, maximum: 86_400 },
    ),
    clockToleranceSeconds: ClockToleranceSeconds,
    maxChainDepth: MaxChainDepth,
    jwks: KeySourceConfigSchema,
    signingAlg: Type.Union(
      SIGNING_ALGS.map((alg) => Type.Literal(alg)),
      { default: 'ES256', description: 'ES256, EdDSA or RS256' },
    ),
    policy: Type.Object(
      {
        ...POLICY_SOURCE_FIELDS,
        readyTimeoutMs: Milliseconds(
          10_000,
          'how long start-up waits for the first policy before serving without one (not ready)',
          { minimum: 0 },
        ),
      },
      { additionalProperties: false },
    ),
    keys: Type.Optional(
      Type.Object(
        {
          dir: Type.Optional(Type.String({ minLength: 1 })),
          rotateEverySeconds: Type.Optional(Type.Integer({ minimum: 60 })),
          prepublishSeconds: Type.Optional(
            Type.Integer({
              minimum: 0,
              maximum: 86_400,
              description: `seconds a new key is published before it signs; at least the sidecars' jwks.refreshIntervalMs plus 60 s (default ${DEFAULT_PREPUBLISH_SECONDS})`,
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    clients: Type.Array(Client, { default: [] }),
    externalIssuers: Type.Array(StsExternalIssuerSchema, { default: [] }),
    resources: Type.Record(Type.String(), Type.String(), {
      default: {},
      description: 'resource URI → service name (RFC 8707)',
    }),
    kubernetes: Type.Optional(
      Type.Object(
        {
          issuer: Type.String({ minLength: 1 }),
          jwksUri: { ...HttpUrl, description: 'the Kubernetes API server JWK Set URL' },
          audience: Type.String({ minLength: 1 }),
        },
        { additionalProperties: false },
      ),
    ),
    redis: Type.Optional(StsRedisSchema),
    // What a failed-login flood may cost (src/sts/auth-throttle.ts, docs/sts.md "Client authentication limits").
    clientAuth: Type.Object(
      {
        maxConcurrentSecretChecks: Type.Integer({
          minimum: 1,
          maximum: 64,
          default: 1,
          description: 'scrypt secret checks running at once (each takes a CPU core for ~50-100 ms)',
        }),
        maxQueuedSecretChecks: Type.Integer({
          minimum: 0,
          maximum: 1024,
          default: 8,
          description: 'scrypt secret checks waiting; beyond, 429 at once',
        }),
        failureWindowSeconds: Type.Integer({
          minimum: 1,
          maximum: 3600,
          default: 60,
          description: 'the window failed authentications are counted in',
        }),
        maxFailuresPerClient: Type.Integer({
          minimum: 1,
          default: 10,
          description: 'failed authentications per client id per window before 429',
        }),
        maxFailuresPerPeer: Type.Integer({
          minimum: 1,
          default: 20,
          description: 'failed authentications per peer address per window before 429',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    logLevel: LogLevel,
    transport: TransportConfigSchema,
    identity: WorkloadIdentityConfigSchema,
    spiffe: SpiffeMappingConfigSchema,
    telemetry: TelemetryConfigSchema,
  },
  { additionalProperties: false },
);

export type StsConfig = Readonly<Static<typeof StsConfigSchema>>;
export type StsClientConfig = Static<typeof Client>;
export type ExternalIssuerConfig = Static<typeof StsExternalIssuerSchema>;

export function loadStsConfig(options: LoadOptions): StsConfig {
  const config = loadConfig(StsConfigSchema, options);
  checkStsConfig(config, options.file ?? '(no config file)');
  return config;
}

/** The rules that span fields. */
export function checkStsConfig(config: StsConfig, source: string): void {
  const { policy } = config;
  checkPolicySourceConfig(policy, source);
  checkKeySourceConfig(config.jwks, 'jwks', source);
  const rotateEvery = config.keys?.rotateEverySeconds;
  const prepublish = config.keys?.prepublishSeconds ?? DEFAULT_PREPUBLISH_SECONDS;
  if (rotateEvery !== undefined && prepublish >= rotateEvery) {
    throw new ConfigError(
      source,
      'keys.prepublishSeconds',
      `fewer seconds than keys.rotateEverySeconds (${rotateEvery}): the next key is published that long before it signs`,
      String(prepublish),
    );
  }
  const seen = new Set<string>();
  config.clients.forEach((client, index) => {
    if (seen.has(client.id))
      throw new ConfigError(source, `clients.${index}.id`, 'a unique client id', JSON.stringify(client.id));
    seen.add(client.id);
    if (client.secret !== undefined && client.secretHash !== undefined) {
      throw new ConfigError(source, `clients.${index}`, 'secret or secretHash, not both', 'both');
    }
    if (client.jwks !== undefined && client.jwksUri !== undefined) {
      throw new ConfigError(source, `clients.${index}`, 'jwks or jwksUri, not both', 'both');
    }
    const tlsClientAuth = client.tlsClientAuth === true || client.tlsClientAuthSanUri !== undefined;
    if (
      client.secret === undefined &&
      client.secretHash === undefined &&
      client.jwks === undefined &&
      client.jwksUri === undefined &&
      !tlsClientAuth
    ) {
      throw new ConfigError(
        source,
        `clients.${index}`,
        'a credential: tlsClientAuth, tlsClientAuthSanUri, secret, secretHash, jwks or jwksUri',
        'none',
      );
    }
    if (client.tlsClientAuth === false && client.tlsClientAuthSanUri !== undefined) {
      throw new ConfigError(
        source,
        `clients.${index}.tlsClientAuth`,
        'true or absent when tlsClientAuthSanUri is set',
        'false',
      );
    }
    if (tlsClientAuth && config.transport.mode !== 'mtls') {
      throw new ConfigError(
        source,
        `clients.${index}`,
        'tls_client_auth only with transport.mode mtls',
        config.transport.mode,
      );
    }
    if (client.serviceAccount !== undefined && config.kubernetes === undefined) {
      throw new ConfigError(
        source,
        `clients.${index}.serviceAccount`,
        'a kubernetes section to verify service account tokens against',
        'no kubernetes section',
      );
    }
  });
  if (config.transport.mode === 'mtls') {
    // The STS listens on TLS: its issuer (and so its token endpoint) is https, and so is a policy server it reads.
    if (!config.issuer.startsWith('https://'))
      throw new ConfigError(source, 'issuer', 'an https:// issuer in transport.mode mtls', config.issuer);
    if (policy.url !== undefined && !policy.url.startsWith('https://'))
      throw new ConfigError(source, 'policy.url', 'an https:// URL in transport.mode mtls', policy.url);
  }
  const issuers = new Set<string>([config.issuer]);
  config.externalIssuers.forEach((external, index) => {
    if (issuers.has(external.issuer))
      throw new ConfigError(
        source,
        `externalIssuers.${index}.issuer`,
        'an issuer not listed twice and not the STS itself',
        JSON.stringify(external.issuer),
      );
    issuers.add(external.issuer);
    if (external.jwksUri === undefined && external.discovery !== true && external.introspection === undefined) {
      throw new ConfigError(source, `externalIssuers.${index}`, 'jwksUri, discovery: true, or introspection', 'none');
    }
  });
  checkExternalIssuers(config.externalIssuers, source);
}
