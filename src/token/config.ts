/**
 * Token verification settings the sidecar and the STS share: how issuer keys
 * are fetched and kept (src/token/key-source.ts), the clock skew allowed on
 * exp/nbf/iat, and the longest token read. Each part's config.ts embeds
 * these schemas, so a default is written here once and the factories take
 * their fallbacks from the same constants.
 */
import { type Static, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { HttpUrl, Milliseconds, Seconds } from '../config/atoms.ts';
import { ConfigError } from '../config/config-error.ts';
import { MAX_MAX_DEPTH } from '../policy/language/schema.ts';

export const KeySourceConfigSchema = Type.Object(
  {
    refreshIntervalMs: Milliseconds(
      300_000,
      "how often an issuer's keys are refetched in the background; the STS publishes a new key at least this long (plus the /jwks max-age) before it signs",
      { minimum: 1_000 },
    ),
    cooldownMs: Milliseconds(
      30_000,
      'the least time between two refetches caused by an unknown kid: a flood of made-up kids costs the issuer one fetch per this',
      { minimum: 0 },
    ),
    maxStaleMs: Milliseconds(
      86_400_000,
      "how long the last good keys keep verifying while the issuer's JWKS cannot be fetched; after that every token of that issuer is refused (401) and readiness fails",
      { minimum: 1_000 },
    ),
    timeoutMs: Milliseconds(2_000, 'how long one JWKS or discovery fetch may take'),
  },
  { additionalProperties: false, default: {}, description: "how issuers' signing keys (JWKS) are fetched and kept" },
);
export type KeySourceConfig = Readonly<Static<typeof KeySourceConfigSchema>>;

/** The schema's defaults, for a key source built outside a part's config (tests, `baton token`). */
export const KEY_SOURCE_DEFAULTS: KeySourceConfig = Object.freeze(
  Value.Default(KeySourceConfigSchema, {}) as KeySourceConfig,
);

export const ClockToleranceSeconds = Seconds(
  30,
  'seconds of clock skew allowed when checking exp, nbf and iat (RFC 7519 §4.1.4 "some small leeway")',
  { minimum: 0, maximum: 300 },
);
export const DEFAULT_CLOCK_TOLERANCE_SECONDS = ClockToleranceSeconds.default as number;

export const MaxTokenBytes = Type.Integer({
  minimum: 256,
  maximum: 65_536,
  default: 8192,
  description: 'the longest bearer token read; a longer one is refused (401) before it is parsed',
});
export const DEFAULT_MAX_TOKEN_BYTES = MaxTokenBytes.default as number;

/**
 * The most services an act chain may name, caller included, before a token
 * is refused as malformed. One default for the sidecar and the STS: the
 * policy language's ceiling on spec.maxDepth. A lower bound at one hop would
 * refuse, as a malformed token, a chain the policy admits (it was 16 in the
 * sidecar and 64 in the STS); the policy's maxDepth is the limit that is
 * meant to bind, and it is checked at every hop.
 */
export const MaxChainDepth = Type.Integer({
  minimum: 1,
  maximum: MAX_MAX_DEPTH,
  default: MAX_MAX_DEPTH,
  description: `the most services an act chain may name, caller included; the policy's spec.maxDepth also applies (1-${MAX_MAX_DEPTH})`,
});
export const DEFAULT_MAX_CHAIN_DEPTH = MaxChainDepth.default as number;

/** RFC 7662 introspection of an external issuer's opaque tokens (the `introspection` block of an external issuer). */
export const IntrospectionConfigSchema = Type.Object(
  {
    endpoint: Type.Optional(
      Type.String({
        ...HttpUrl,
        description: "the RFC 7662 endpoint; default the issuer metadata's introspection_endpoint",
      }),
    ),
    tokenPrefix: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 256,
        description:
          'the start of every opaque token of this issuer (ory_at_, …): only such tokens are sent to its endpoint; required, distinct and none the start of another, when several issuers introspect',
      }),
    ),
    clientId: Type.String({
      minLength: 1,
      description: 'the client baton authenticates to the introspection endpoint as',
    }),
    clientSecret: Type.Optional(Type.String({ minLength: 1, description: 'its secret (or clientSecretFile)' })),
    clientSecretFile: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'a file holding its secret, read at start (a mounted Secret in Kubernetes); instead of clientSecret',
      }),
    ),
    authMethod: Type.Union([Type.Literal('client_secret_basic'), Type.Literal('client_secret_post')], {
      default: 'client_secret_basic',
      description: 'client_secret_basic | client_secret_post',
    }),
    cacheMaxEntries: Type.Integer({
      minimum: 1,
      default: 10_000,
      description: 'introspection answers kept in process',
    }),
    maxCacheSeconds: Seconds(300, 'the longest an active answer is reused (a revocation is seen within this)', {
      maximum: 3600,
    }),
    inactiveCacheSeconds: Seconds(10, 'how long an inactive answer is reused', { minimum: 0, maximum: 300 }),
    maxCallsPerSecond: Type.Integer({
      minimum: 1,
      default: 50,
      description:
        'introspection calls per second for tokens the issuer has not called active before; past it such tokens are refused (503) until the budget refills, and tokens already known are still asked',
    }),
    timeoutMs: Milliseconds(2_000, 'how long one introspection request may take; then 503'),
  },
  { additionalProperties: false, description: 'RFC 7662 introspection of opaque access tokens' },
);

const IntrospectionDefaulted = Type.Pick(IntrospectionConfigSchema, [
  'authMethod',
  'cacheMaxEntries',
  'maxCacheSeconds',
  'inactiveCacheSeconds',
  'maxCallsPerSecond',
  'timeoutMs',
]);
/** The schema's defaults, for an introspector built outside a part's config (tests). */
export const INTROSPECTION_DEFAULTS: Readonly<Static<typeof IntrospectionDefaulted>> = Object.freeze(
  Value.Default(IntrospectionDefaulted, {}) as Static<typeof IntrospectionDefaulted>,
);

/** Cross-field rule: keys older than maxStaleMs are refused, so a refresh interval as long would leave the issuer unusable between refreshes. */
export function checkKeySourceConfig(config: KeySourceConfig, key: string, source: string): void {
  if (config.maxStaleMs <= config.refreshIntervalMs) {
    throw new ConfigError(
      source,
      `${key}.maxStaleMs`,
      `more than ${key}.refreshIntervalMs (${config.refreshIntervalMs}): keys are refused once older than this`,
      String(config.maxStaleMs),
    );
  }
}
