/**
 * The sidecar's configuration (docs/sidecar.md): one service, its three
 * ports, where the STS, the policy and the upstreams are. Validated once by
 * `loadConfig` into a frozen object; nothing deeper reads the environment.
 */
import { type Static, Type } from '@sinclair/typebox';
import type { SidecarClientAuthMethod } from '../core/client-auth-method.ts';
import {
  HttpUrl,
  ServiceNameText,
  ListenPort,
  LogLevel,
  Milliseconds,
  Port,
  Seconds,
  SpiffeIdText,
} from '../config/atoms.ts';
import { ConfigError } from '../config/config-error.ts';
import { loadConfig, type LoadOptions } from '../config/load.ts';
import {
  ConnectTimeoutMs,
  SpiffeMappingConfigSchema,
  TransportConfigSchema,
  WorkloadIdentityConfigSchema,
} from '../identity/config.ts';
import { checkPolicySourceConfig, POLICY_SOURCE_FIELDS } from '../policy/distribution/config.ts';
import { SidecarRedisSchema } from '../redis/config.ts';
import { TelemetryConfigSchema } from '../telemetry/config.ts';
import {
  ClockToleranceSeconds,
  checkKeySourceConfig,
  KeySourceConfigSchema,
  MaxChainDepth,
  MaxTokenBytes,
} from '../token/config.ts';
import { checkExternalIssuers, ISSUER_PROFILE_FIELDS } from '../token/issuer-profile-config.ts';

/**
 * How the sidecar trades tokens at the STS (src/sidecar/exchange/). The
 * defaults are written once, here: the exchanger takes this object whole
 * and has no fallbacks of its own.
 */
export const ExchangeConfigSchema = Type.Object(
  {
    expiryMarginSeconds: Seconds(
      30,
      'a cached exchanged token stops being served this long before its exp, so it does not expire on the way to the upstream',
      { minimum: 0, maximum: 3600 },
    ),
    refreshAheadSeconds: Seconds(
      60,
      'a cached token is re-exchanged in the background this long before it stops being served, while the old one is still used (0: only on expiry)',
      { minimum: 0, maximum: 3600 },
    ),
    refusalCacheMs: Milliseconds(
      5_000,
      'how long an STS refusal of one exchange is answered from memory, so a refused caller cannot flood the STS (0: not remembered)',
      { minimum: 0, maximum: 300_000 },
    ),
    connectTimeoutMs: Milliseconds(
      1_000,
      'how long connecting to the STS may take (plaintext mode; in mtls mode the mesh connection applies)',
    ),
    timeoutMs: Milliseconds(
      2_000,
      'how long the STS may take to send response headers, and the longest pause in its body; then 503',
    ),
    breaker: Type.Object(
      {
        failureThreshold: Type.Integer({
          minimum: 1,
          default: 5,
          description:
            'STS outages in a row (timeouts, 5xx, connection errors) that open the circuit; refusals do not count',
        }),
        openMs: Milliseconds(
          1_000,
          'how long the open circuit answers 503 without calling the STS, the first time; then one probe goes through',
        ),
        maxOpenMs: Milliseconds(30_000, 'each failed probe doubles the open period, up to this'),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false, default: {} },
);
export type ExchangeConfig = Readonly<Static<typeof ExchangeConfigSchema>>;

/**
 * One external identity provider as the sidecar trusts it
 * (docs/identity-providers.md). The injector and the Helm chart build their
 * `externalIssuers` from this object (src/injector/config.ts), so the three
 * accept the same keys.
 */
export const SidecarExternalIssuerSchema = Type.Object(
  {
    issuer: HttpUrl,
    jwksUri: Type.Optional({
      ...HttpUrl,
      description: 'an http(s) URL of the issuer JWK Set (default: discovered from the issuer metadata)',
    }),
    audience: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'the aud the IdP puts in tokens for this service (default: the service name)',
      }),
    ),
    ...ISSUER_PROFILE_FIELDS,
  },
  { additionalProperties: false },
);

export const SidecarConfigSchema = Type.Object(
  {
    service: ServiceNameText(
      'the service name as the call-graph policy spells it: orders in the home namespace (spiffe.namespace), orders.shop in another',
    ),
    host: Type.String({
      default: '127.0.0.1',
      minLength: 1,
      description: 'the bind address of the inbound and admin ports (0.0.0.0 in Kubernetes)',
    }),
    logLevel: LogLevel,
    connectTimeoutMs: ConnectTimeoutMs,
    inbound: Type.Object(
      {
        port: ListenPort(7070),
        app: Type.String({
          ...HttpUrl,
          default: 'http://127.0.0.1:8080',
          description: 'the app behind this sidecar, an http URL on the pod',
        }),
        forwardToken: Type.Boolean({
          default: false,
          description: 'also pass the verified Authorization header to the app',
        }),
        timeoutMs: Milliseconds(
          30_000,
          'how long the app may take to answer (time to response headers and between body chunks)',
        ),
        maxConcurrent: Type.Integer({
          minimum: 1,
          default: 1024,
          description: 'requests in flight before answering 503',
        }),
        clientCertificate: Type.Union([Type.Literal('required'), Type.Literal('optional')], {
          default: 'required',
          description:
            'mtls mode: whether callers must present a client certificate (optional only for an entrypoint behind an ingress outside the mesh)',
        }),
        plaintextPort: Type.Optional(
          ListenPort(
            undefined,
            'mtls mode, entrypoints only: a second inbound port in plaintext, behind the ingress; it accepts external-IdP tokens only, never mesh tokens',
          ),
        ),
        peerShare: Type.Number({
          exclusiveMinimum: 0,
          maximum: 1,
          default: 0.5,
          description: 'fraction of maxConcurrent one peer address may hold before 429 (1: no bound)',
        }),
        subjectShare: Type.Number({
          exclusiveMinimum: 0,
          maximum: 1,
          default: 0.25,
          description: 'fraction of maxConcurrent one user may hold before 429 (1: no bound)',
        }),
        bodyTimeoutMs: Milliseconds(60_000, 'how long the request body may take to arrive before answering 408'),
      },
      { additionalProperties: false, default: {} },
    ),
    outbound: Type.Object(
      {
        port: ListenPort(7071),
        // Whoever reaches the outbound port calls out as this service: only
        // the app in the same pod (network namespace) may, so loopback by default.
        host: Type.String({
          default: '127.0.0.1',
          minLength: 1,
          description:
            'the bind address of the outbound port (keep it on loopback: anyone who reaches it acts as this service)',
        }),
        defaultUpstreamPort: Type.Integer({
          ...Port(
            'inbound port of other sidecars, for services not listed in upstreams (https://<service>:<port> in mtls mode, http:// in plaintext)',
          ),
          default: 7070,
        }),
        timeoutMs: Milliseconds(30_000, 'how long an upstream may take to answer'),
        maxConcurrent: Type.Integer({
          minimum: 1,
          default: 1024,
          description: 'calls out in flight before answering 503',
        }),
        subjectShare: Type.Number({
          exclusiveMinimum: 0,
          maximum: 1,
          default: 0.25,
          description: 'fraction of maxConcurrent one user may hold before 429 (1: no bound)',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    admin: Type.Object(
      { port: ListenPort(7072, 'the admin port (health, readiness, metrics)') },
      { additionalProperties: false, default: {} },
    ),
    sts: Type.Object(
      {
        issuer: HttpUrl,
        clientId: Type.String({ minLength: 1 }),
        clientSecret: Type.Optional(
          Type.String({
            minLength: 1,
            description: 'a non-empty client secret (client_secret_basic, client_secret_post)',
          }),
        ),
        authMethod: Type.Optional(
          Type.Union(
            [Type.Literal('tls_client_auth'), Type.Literal('client_secret_basic'), Type.Literal('client_secret_post')],
            {
              description:
                'how the sidecar authenticates to the STS; default tls_client_auth in mtls mode (RFC 8705 §2.1), client_secret_basic in plaintext mode',
            },
          ),
        ),
        tokenEndpoint: Type.Optional(HttpUrl),
        jwksUri: Type.Optional(HttpUrl),
        spiffeId: Type.Optional({
          ...SpiffeIdText,
          description: "mtls mode: the STS's SPIFFE ID (default: the ID the spiffe rule gives baton-sts)",
        }),
      },
      { additionalProperties: false },
    ),
    policy: Type.Object(POLICY_SOURCE_FIELDS, { additionalProperties: false }),
    upstreams: Type.Record(Type.String(), HttpUrl, { default: {} }),
    externalIssuers: Type.Array(SidecarExternalIssuerSchema, { default: [] }),
    redis: Type.Optional(SidecarRedisSchema),
    exchange: ExchangeConfigSchema,
    jwks: KeySourceConfigSchema,
    cache: Type.Object(
      {
        maxEntries: Type.Integer({ minimum: 1, default: 10_000, description: 'exchanged tokens kept in process' }),
        verifiedMaxEntries: Type.Integer({
          minimum: 1,
          default: 10_000,
          description: 'verified inbound tokens kept in process',
        }),
        // Deprecated: baton-context handles are sealed, not stored (src/sidecar/context-handles.ts). Still read, so a config that sets them starts; the sidecar warns once.
        handleMaxEntries: Type.Optional(
          Type.Integer({
            minimum: 1,
            description:
              'deprecated and ignored: baton-context handles are sealed, not stored, so there is no store to size; remove it',
          }),
        ),
        handleMaxPerSubject: Type.Optional(
          Type.Integer({
            minimum: 1,
            description:
              'deprecated and ignored: baton-context handles are sealed, not stored, so there is no per-subject quota; remove it',
          }),
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    limits: Type.Object(
      {
        maxHeaderBytes: Type.Integer({
          minimum: 1024,
          default: 16_384,
          description:
            'the largest request head in bytes (request line, field lines, blank line); a larger one is refused with 431',
        }),
        maxResponseHeaderBytes: Type.Integer({
          minimum: 1024,
          default: 16_384,
          description: 'the largest answer head an app or upstream may send, in bytes; a larger one is a 502',
        }),
        maxConnections: Type.Integer({
          minimum: 1,
          default: 4_096,
          description:
            'connections open at once on each data-plane port, TLS handshakes included; more are closed at accept',
        }),
        maxConnectionsPerPeer: Type.Integer({
          minimum: 1,
          default: 1_024,
          description: 'connections open at once on an inbound port from one address; more are closed at accept',
        }),
        handshakeTimeoutMs: Milliseconds(
          10_000,
          'mtls mode: how long a caller has to finish its TLS handshake on the inbound port',
        ),
        headTimeoutMs: Milliseconds(
          60_000,
          'how long a request head may take to arrive once its first byte has (then 408)',
        ),
        keepAliveTimeoutMs: Milliseconds(
          5_000,
          'how long a client connection may sit idle between requests (told to clients as Keep-Alive: timeout)',
        ),
        upstreamKeepAliveTimeoutMs: Milliseconds(
          4_000,
          'how long an idle connection to the app or an upstream sidecar is kept for reuse (below their keep-alive timeout, so a reused one is rarely found closed)',
        ),
        upstreamIdlePerOrigin: Type.Integer({
          minimum: 0,
          default: 256,
          description: 'idle connections kept per app or upstream for reuse',
        }),
        http2: Type.Object(
          {
            maxConcurrentStreams: Type.Integer({
              minimum: 1,
              default: 100,
              description: 'HTTP/2 streams one client session may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS)',
            }),
            resetBurst: Type.Integer({
              minimum: 1,
              default: 1000,
              description:
                'HTTP/2 streams a client may reset in a burst before its session ends (rapid reset, CVE-2023-44487)',
            }),
            resetRate: Type.Integer({
              minimum: 1,
              default: 33,
              description: 'HTTP/2 stream resets per second a client may keep up after the burst',
            }),
            maxSessionMemoryMb: Type.Integer({
              minimum: 1,
              default: 10,
              description: 'the most memory one HTTP/2 session may hold, in megabytes; past it new streams are refused',
            }),
          },
          { additionalProperties: false, default: {} },
        ),
        maxTokenBytes: MaxTokenBytes,
        maxActDepth: MaxChainDepth,
        clockToleranceSeconds: ClockToleranceSeconds,
      },
      { additionalProperties: false, default: {} },
    ),
    transport: TransportConfigSchema,
    identity: WorkloadIdentityConfigSchema,
    spiffe: SpiffeMappingConfigSchema,
    telemetry: TelemetryConfigSchema,
    shutdown: Type.Object(
      { graceMs: Milliseconds(10_000, 'how long in-flight requests may take to finish after SIGTERM') },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
);

export type SidecarConfig = Readonly<Static<typeof SidecarConfigSchema>>;

/** The service names the STS and the policy server run as, for the SPIFFE rule (docs/identity.md). */
export const STS_SERVICE = 'baton-sts';
export const POLICY_SERVER_SERVICE = 'baton-policy-server';

/** RFC 8705 §2.1 `tls_client_auth` by default in mtls mode; a secret in plaintext mode. */
export function stsAuthMethod(config: Pick<SidecarConfig, 'sts' | 'transport'>): SidecarClientAuthMethod {
  return config.sts.authMethod ?? (config.transport.mode === 'mtls' ? 'tls_client_auth' : 'client_secret_basic');
}

export function loadSidecarConfig(options: LoadOptions): SidecarConfig {
  const config = loadConfig(SidecarConfigSchema, options);
  checkSidecarConfig(config, options.file ?? '(no config file)');
  return config;
}

/**
 * The rules that span fields, checked at load so a bad config stops the
 * sidecar before it binds a port: one policy source, each auth method with
 * its credential, timings that can hold, and an mtls sidecar that never
 * talks plaintext to the mesh.
 */
export function checkSidecarConfig(config: SidecarConfig, source: string): void {
  checkMeshClientConfig(config, source);
  if (config.transport.mode === 'plaintext') {
    if (config.inbound.plaintextPort !== undefined)
      throw new ConfigError(
        source,
        'inbound.plaintextPort',
        'no second plaintext port: in plaintext mode the inbound port is already plaintext',
        String(config.inbound.plaintextPort),
      );
    return;
  }
  for (const [name, url] of Object.entries(config.upstreams)) {
    if (!url.startsWith('https://'))
      throw new ConfigError(source, `upstreams.${name}`, 'an https:// URL in transport.mode mtls', url);
  }
  if (
    config.inbound.plaintextPort !== undefined &&
    config.inbound.plaintextPort === config.inbound.port &&
    config.inbound.port !== 0
  ) {
    throw new ConfigError(
      source,
      'inbound.plaintextPort',
      'a port other than inbound.port',
      String(config.inbound.plaintextPort),
    );
  }
}

/**
 * The cross-field rules on the blocks every data-plane part takes from this
 * schema (the sidecar, and `baton authz`: src/authz/config.ts): one policy
 * source, each auth method with its credential, timings that can hold, and
 * https:// for the STS and the policy server in mtls mode (a plain http://
 * URL there would be a silent fallback to plaintext).
 */
export function checkMeshClientConfig(
  config: Pick<SidecarConfig, 'policy' | 'exchange' | 'jwks' | 'externalIssuers' | 'sts' | 'transport'>,
  source: string,
): void {
  checkPolicySourceConfig(config.policy, source);
  const { breaker } = config.exchange;
  if (breaker.maxOpenMs < breaker.openMs) {
    throw new ConfigError(
      source,
      'exchange.breaker.maxOpenMs',
      `at least exchange.breaker.openMs (${breaker.openMs}): the open period only grows`,
      String(breaker.maxOpenMs),
    );
  }
  checkKeySourceConfig(config.jwks, 'jwks', source);
  checkExternalIssuers(config.externalIssuers, source);
  const method = stsAuthMethod(config);
  if (method !== 'tls_client_auth' && config.sts.clientSecret === undefined) {
    throw new ConfigError(source, 'sts.clientSecret', `a client secret for sts.authMethod ${method}`, 'none');
  }
  if (config.transport.mode === 'plaintext') {
    if (method === 'tls_client_auth')
      throw new ConfigError(
        source,
        'sts.authMethod',
        'a client secret method: tls_client_auth needs transport.mode mtls',
        method,
      );
    return;
  }
  const meshUrls: Array<[string, string | undefined]> = [
    ['sts.issuer', config.sts.issuer],
    ['sts.tokenEndpoint', config.sts.tokenEndpoint],
    ['sts.jwksUri', config.sts.jwksUri],
    ['policy.url', config.policy.url],
  ];
  for (const [key, url] of meshUrls) {
    if (url !== undefined && !url.startsWith('https://'))
      throw new ConfigError(source, key, 'an https:// URL in transport.mode mtls', url);
  }
}
