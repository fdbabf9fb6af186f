/**
 * The `redis` settings of the sidecar and the STS (docs/sidecar.md,
 * docs/sts.md). Each process reaches Redis as its own ACL user; the password
 * comes from a file (a Secret mounted into that container only), never from
 * the URL, so no manifest, env dump or log line carries it. The sidecar also
 * names the key that seals what it stores: without one it does not start.
 */
import { type Static, Type } from '@sinclair/typebox';

// No userinfo: credentials in a URL end up in manifests, `ps` and logs.
export const RedisUrl = Type.String({
  pattern: '^rediss?://[^\\s/@]+(/[0-9]{0,2})?$',
  description: 'a redis:// or rediss:// URL without credentials (they come from username and passwordFile)',
});
const File = (description: string) => Type.String({ minLength: 1, description });
const Username = Type.String({ pattern: '^[A-Za-z0-9][-A-Za-z0-9_.:]{0,127}$', description: 'a Redis ACL user name' });

export const SidecarRedisSchema = Type.Object(
  {
    url: RedisUrl,
    username: Type.Optional({
      ...Username,
      description: 'the ACL user this sidecar authenticates as (default sidecar-<service>)',
    }),
    passwordFile: File("a file holding the ACL user's password, mounted into the sidecar container only"),
    sealKeyFile: File(
      'a file holding the 32-byte key (base64) that seals exchanged tokens; required: tokens are never stored in Redis unsealed',
    ),
    previousSealKeyFile: Type.Optional(
      File('the key being rotated out: entries it sealed still open until they expire'),
    ),
    commandTimeoutMs: Type.Integer({
      minimum: 1,
      maximum: 10_000,
      default: 50,
      description: 'how long one Redis command may take before it counts as a miss',
    }),
  },
  {
    additionalProperties: false,
    description: 'an object { url, passwordFile, sealKeyFile, ... } (docs/sidecar.md "Redis tier")',
  },
);

export const StsRedisSchema = Type.Object(
  {
    url: RedisUrl,
    username: Type.String({ ...Username, default: 'baton-sts' }),
    passwordFile: File("a file holding the ACL user's password, mounted into the STS container only"),
    commandTimeoutMs: Type.Integer({
      minimum: 1,
      maximum: 10_000,
      default: 250,
      description: 'how long one Redis command may take before this replica falls back to its own replay set',
    }),
  },
  {
    additionalProperties: false,
    description: 'an object { url, passwordFile, username } (docs/sts.md "Replay protection")',
  },
);

export type SidecarRedisConfig = Static<typeof SidecarRedisSchema>;
export type StsRedisConfig = Static<typeof StsRedisSchema>;

/** The ACL user a sidecar is by default: one per service, so no service can read another's keys. */
export const sidecarRedisUser = (service: string): string => `sidecar-${service}`;

/**
 * Where a service's entries live. Service names are DNS labels (no `:`), so
 * `baton:orders:*` never matches `baton:orders-eu:…`, and the STS's `_sts`
 * (an underscore no DNS label has) can never be a service's.
 */
export const sidecarKeyPrefix = (service: string): string => `baton:${service}:`;
export const STS_KEY_PREFIX = 'baton:_sts:';
export const STS_REDIS_USER = 'baton-sts';
