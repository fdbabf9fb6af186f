/**
 * The configuration an external issuer shares between the sidecar and the
 * STS (docs/identity-providers.md): its profile (a preset, and any field set
 * in its place) and RFC 7662 introspection for opaque tokens. Each part's
 * config.ts spreads these fields into its own `externalIssuers` entry, so
 * both validate the same keys with the same defaults.
 */
import { readFileSync } from 'node:fs';
import { type TLiteral, type TUnion, Type } from '@sinclair/typebox';
import { ConfigError } from '../config/config-error.ts';
import type { Logger } from 'pino';
import { IntrospectionConfigSchema } from './config.ts';
import type { Dispatcher } from 'undici';
import { createIntrospector, type Introspector } from './introspection.ts';
import { prefixConflict } from './opaque-routing.ts';
import {
  CLIENT_CLAIMS,
  type IssuerProfile,
  PROFILE_NAMES,
  resolveProfile,
  ROLE_RULES,
  SERVICE_RULES,
  SUBJECT_CLAIMS,
} from './issuer-profile.ts';

function literals<T extends string>(values: readonly T[], description: string): TUnion<TLiteral<T>[]> {
  return Type.Union(
    values.map((v) => Type.Literal(v)),
    { description },
  );
}

export const ISSUER_PROFILE_FIELDS = {
  profile: Type.Union(
    PROFILE_NAMES.map((name) => Type.Literal(name)),
    {
      default: 'rfc9068',
      description: 'how the issuer shapes its tokens: rfc9068 (strict default), keycloak, entra, okta or auth0',
    },
  ) as TUnion<TLiteral<(typeof PROFILE_NAMES)[number]>[]>,
  typ: Type.Optional(
    Type.Array(Type.String({ minLength: 1 }), {
      minItems: 1,
      description: "accepted JOSE typ values; 'none' for no typ",
    }),
  ),
  audienceMatch: Type.Optional(literals(['exactly-one', 'contains'] as const, "'exactly-one' or 'contains'")),
  scopeClaim: Type.Optional(literals(['scope', 'scp'] as const, "'scope' or 'scp'")),
  roleScopes: Type.Optional(
    Type.Object(
      {
        rule: literals(ROLE_RULES, ROLE_RULES.join(', ')),
        map: Type.Optional(
          Type.Record(Type.String(), Type.Array(Type.String({ minLength: 1, pattern: '^[^ ]+$' })), {
            description: 'role → scopes it grants',
          }),
        ),
      },
      { additionalProperties: false },
    ),
  ),
  subjectClaim: Type.Optional(literals(SUBJECT_CLAIMS, SUBJECT_CLAIMS.join(', '))),
  clientClaims: Type.Optional(Type.Array(literals(CLIENT_CLAIMS, CLIENT_CLAIMS.join(', ')), { minItems: 1 })),
  serviceWhen: Type.Optional(Type.Array(literals(SERVICE_RULES, SERVICE_RULES.join(', ')))),
  introspection: Type.Optional(IntrospectionConfigSchema),
};

/** The fields above, as a part's config reads them after validation. */
export interface ExternalIssuerProfileConfig {
  readonly issuer: string;
  readonly profile: IssuerProfile['name'];
  readonly typ?: readonly string[] | undefined;
  readonly audienceMatch?: IssuerProfile['audienceMatch'] | undefined;
  readonly scopeClaim?: IssuerProfile['scopeClaim'] | undefined;
  readonly roleScopes?: IssuerProfile['roleScopes'] | undefined;
  readonly subjectClaim?: IssuerProfile['subjectClaim'] | undefined;
  readonly clientClaims?: IssuerProfile['clientClaims'] | undefined;
  readonly serviceWhen?: IssuerProfile['serviceWhen'] | undefined;
  readonly introspection?:
    | {
        readonly endpoint?: string | undefined;
        readonly tokenPrefix?: string | undefined;
        readonly clientId: string;
        readonly clientSecret?: string | undefined;
        readonly clientSecretFile?: string | undefined;
        readonly authMethod: 'client_secret_basic' | 'client_secret_post';
        readonly cacheMaxEntries: number;
        readonly maxCacheSeconds: number;
        readonly inactiveCacheSeconds: number;
        readonly maxCallsPerSecond: number;
        readonly timeoutMs: number;
      }
    | undefined;
}

export function profileOf(config: ExternalIssuerProfileConfig): IssuerProfile {
  return resolveProfile(config);
}

export function introspectorOf(
  config: ExternalIssuerProfileConfig,
  deps: { logger: Logger; now: () => number; dispatcher?: Dispatcher | undefined },
): Introspector | undefined {
  const i = config.introspection;
  if (i === undefined) return undefined;
  return createIntrospector({
    issuer: config.issuer,
    endpoint: i.endpoint,
    tokenPrefix: i.tokenPrefix,
    clientId: i.clientId,
    clientSecret: i.clientSecret ?? readSecretFile(i.clientSecretFile as string),
    authMethod: i.authMethod,
    cacheMaxEntries: i.cacheMaxEntries,
    maxCacheSeconds: i.maxCacheSeconds,
    inactiveCacheSeconds: i.inactiveCacheSeconds,
    maxCallsPerSecond: i.maxCallsPerSecond,
    timeoutMs: i.timeoutMs,
    dispatcher: deps.dispatcher,
    logger: deps.logger,
    now: deps.now,
  });
}

/** A secret as a mounted Secret holds it: the file's text, less one trailing newline (`echo` and editors add one). */
function readSecretFile(path: string): string {
  return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
}

/**
 * Cross-field rules: introspecting issuers told apart by their token
 * prefixes (src/token/opaque-routing.ts: an opaque token names no issuer,
 * and sending it to another would disclose it), typ values spelled as
 * media types.
 */
export function checkExternalIssuers(issuers: readonly ExternalIssuerProfileConfig[], source: string): void {
  const introspecting = issuers.flatMap((issuer, index) =>
    issuer.introspection === undefined ? [] : [{ index, prefix: issuer.introspection.tokenPrefix }],
  );
  const conflict = prefixConflict(introspecting.map((i) => i.prefix));
  if (conflict !== undefined) {
    const at = introspecting[conflict.index] as { index: number; prefix: string | undefined };
    const other = introspecting[conflict.other] as { index: number; prefix: string | undefined };
    const key = `externalIssuers.${at.index}.introspection.tokenPrefix`;
    const otherKey = `externalIssuers.${other.index}.introspection.tokenPrefix`;
    if (conflict.problem === 'missing')
      throw new ConfigError(
        source,
        key,
        `a tokenPrefix on each of the ${introspecting.length} introspecting issuers: an opaque token names no issuer, and sending it to another would disclose it`,
        'none',
      );
    const seen = `${JSON.stringify(at.prefix)} and ${otherKey} ${JSON.stringify(other.prefix)}`;
    throw new ConfigError(
      source,
      key,
      `a prefix distinct from every other issuer's, and neither the start of another nor starting with one, so a token reaches one introspection endpoint only`,
      seen,
    );
  }
  issuers.forEach((issuer, index) => {
    const introspection = issuer.introspection;
    if (
      introspection !== undefined &&
      (introspection.clientSecret === undefined) === (introspection.clientSecretFile === undefined)
    ) {
      throw new ConfigError(
        source,
        `externalIssuers.${index}.introspection`,
        'exactly one of clientSecret or clientSecretFile',
        introspection.clientSecret === undefined ? 'neither' : 'both',
      );
    }
    for (const typ of issuer.typ ?? []) {
      if (!/^[A-Za-z0-9!#$&^_.+-]+(\/[A-Za-z0-9!#$&^_.+-]+)?$/.test(typ))
        throw new ConfigError(
          source,
          `externalIssuers.${index}.typ`,
          "media types such as at+jwt or JWT, or 'none'",
          JSON.stringify(typ),
        );
    }
  });
}
