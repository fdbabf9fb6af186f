/**
 * Configuration of policy distribution (docs/policy-server.md): the policy
 * server's own schema, and the `policy` block the sidecar and the STS share
 * to read the policy from a file or from the server. Defaults are written
 * here once; the server and the client take their fallbacks from these
 * constants.
 */
import { type Static, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { HttpUrl, ListenPort, LogLevel, Milliseconds, Seconds, SpiffeIdText } from '../../config/atoms.ts';
import { ConfigError } from '../../config/config-error.ts';
import {
  SpiffeMappingConfigSchema,
  TransportConfigSchema,
  WorkloadIdentityConfigSchema,
} from '../../identity/config.ts';
import { AdminPortConfigSchema } from '../../telemetry/config.ts';

/** The longest a policy server holds a long-poll: under common proxy idle timeouts (60 s). */
export const MAX_WAIT_SECONDS = 60;

export const PolicyServerConfigSchema = Type.Object(
  {
    policy: Type.String({ minLength: 1, description: 'a policy file or a directory holding one (a ConfigMap mount)' }),
    signingKey: Type.String({ minLength: 1, description: 'the path of a PKCS#8 PEM private key (ES256 or EdDSA)' }),
    host: Type.String({ minLength: 1, default: '127.0.0.1', description: 'an address to listen on' }),
    port: ListenPort(7100),
    admin: AdminPortConfigSchema,
    state: Type.Optional(Type.String({ minLength: 1, description: 'the path of the version counter file' })),
    maxWaitSeconds: Seconds(
      MAX_WAIT_SECONDS,
      `the longest a long-poll (?wait=) is held, whole seconds from 1 to ${MAX_WAIT_SECONDS}`,
      { maximum: MAX_WAIT_SECONDS },
    ),
    pollIntervalMs: Milliseconds(2000, 'milliseconds between stat checks of the policy path (0: fs.watch only)', {
      minimum: 0,
    }),
    // Hourly: well under the clients' default policy.maxAgeSeconds (a day).
    reissueSeconds: Seconds(
      3600,
      "re-sign the current version with a fresh issuedAt this often, well under the clients' policy.maxAgeSeconds (0: never)",
      { minimum: 0 },
    ),
    logLevel: LogLevel,
    transport: TransportConfigSchema,
    identity: WorkloadIdentityConfigSchema,
    spiffe: SpiffeMappingConfigSchema,
  },
  { additionalProperties: false },
);
export type PolicyServerConfig = Static<typeof PolicyServerConfigSchema>;

export const DEFAULT_REISSUE_SECONDS = PolicyServerConfigSchema.properties.reissueSeconds.default as number;

/** The `policy` fields of the sidecar and the STS: a file, or the policy server and the key it signs with. */
export const POLICY_SOURCE_FIELDS = {
  file: Type.Optional(
    Type.String({
      minLength: 1,
      description: 'a policy file or directory (a ConfigMap mount), hot-reloaded, instead of a policy server',
    }),
  ),
  url: Type.Optional({ ...HttpUrl, description: 'the policy server (https:// in mtls mode)' }),
  publicKey: Type.Optional(
    Type.String({
      minLength: 1,
      description: 'path to the PEM (SPKI) key the policy server signs with; required with url',
    }),
  ),
  spiffeId: Type.Optional({
    ...SpiffeIdText,
    description: "mtls mode: the policy server's SPIFFE ID (default: the ID the spiffe rule gives baton-policy-server)",
  }),
  maxAgeSeconds: Seconds(
    86_400,
    'refuse a signed policy issued longer ago than this (the policy server re-signs every reissueSeconds)',
    { minimum: 60 },
  ),
  stateFile: Type.Optional(
    Type.String({ minLength: 1, description: 'a writable file keeping the last policy version seen across restarts' }),
  ),
  waitSeconds: Seconds(
    30,
    `how long each long-poll asks the policy server to hold the request; a new version arrives within it (the server caps it at its maxWaitSeconds, at most ${MAX_WAIT_SECONDS})`,
    { maximum: MAX_WAIT_SECONDS },
  ),
  minBackoffMs: Milliseconds(500, 'the first retry delay after a failed fetch; it doubles, with jitter, per failure'),
  maxBackoffMs: Milliseconds(30_000, 'the longest retry delay after failed fetches'),
};

const PolicyClientTimings = Type.Object({
  waitSeconds: POLICY_SOURCE_FIELDS.waitSeconds,
  minBackoffMs: POLICY_SOURCE_FIELDS.minBackoffMs,
  maxBackoffMs: POLICY_SOURCE_FIELDS.maxBackoffMs,
  maxAgeSeconds: POLICY_SOURCE_FIELDS.maxAgeSeconds,
});
/** The schema's defaults, for a policy client built outside a part's config (tests). */
export const POLICY_CLIENT_DEFAULTS: Readonly<Static<typeof PolicyClientTimings>> = Object.freeze(
  Value.Default(PolicyClientTimings, {}) as Static<typeof PolicyClientTimings>,
);

export interface PolicySourceConfig {
  readonly file?: string | undefined;
  readonly url?: string | undefined;
  readonly publicKey?: string | undefined;
  readonly minBackoffMs: number;
  readonly maxBackoffMs: number;
}

/** Cross-field rules of a `policy` block: one source, a key with a server, retry delays that can grow. */
export function checkPolicySourceConfig(policy: PolicySourceConfig, source: string): void {
  if ((policy.file === undefined) === (policy.url === undefined)) {
    throw new ConfigError(
      source,
      'policy',
      'exactly one of policy.file or policy.url',
      policy.file === undefined ? 'neither' : 'both',
    );
  }
  if (policy.url !== undefined && policy.publicKey === undefined) {
    throw new ConfigError(
      source,
      'policy.publicKey',
      'the policy server signing key when policy.url is set',
      'nothing',
    );
  }
  if (policy.maxBackoffMs < policy.minBackoffMs) {
    throw new ConfigError(
      source,
      'policy.maxBackoffMs',
      `at least policy.minBackoffMs (${policy.minBackoffMs})`,
      String(policy.maxBackoffMs),
    );
  }
}
