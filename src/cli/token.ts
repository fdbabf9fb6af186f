/**
 * `baton token check`: would this entrypoint accept this token, and whose
 * identity would it carry? It runs the same verifier the sidecar runs
 * (issuer profile, keys, introspection), on a token given as an argument
 * or, better (an argument shows in `ps`), on stdin. The token itself is
 * never printed: only the verdict, the error code, and the identity.
 */
import { DEFAULT_MAX_CHAIN_DEPTH } from '../token/config.ts';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError } from '../config/config-error.ts';
import { BodyTooLargeError, readBoundedText } from '../core/bounded-text.ts';
import { loadConfig } from '../config/load.ts';
import { SidecarConfigSchema } from '../sidecar/config.ts';
import { createLogger } from '../telemetry/logger.ts';
import { isTokenError } from '../token/errors.ts';
import { introspectorOf, profileOf } from '../token/issuer-profile-config.ts';
import { PROFILE_NAMES, type ProfileName, resolveProfile } from '../token/issuer-profile.ts';
import { createRemoteKeySource, type KeySource } from '../token/key-source.ts';
import { createAccessTokenVerifier, type TrustedIssuer } from '../token/verifier.ts';
import type { VerifiedToken } from '../token/verified-token.ts';
import { type CliContext, type Command, UsageError } from './command.ts';
import { partVariables } from './part-variables.ts';

const HELP = `Usage: baton token check [TOKEN | -] --config SIDECAR.yaml [--json]
       baton token check [TOKEN | -] --issuer URL --audience AUD [--profile P]
                         [--jwks-uri URL] [--json]

Says whether an external issuer's profile accepts an access token, and
what identity it carries: subject, subject issuer, user or service,
client, scopes, expiry. The token is read from stdin when TOKEN is '-' or
absent (prefer this: an argument is visible to other users in 'ps').
The token is never printed.

  --config FILE    an entrypoint sidecar's config: its externalIssuers,
                   with their profiles, keys and introspection
  --issuer URL     check against this issuer alone (keys by discovery,
                   or --jwks-uri)
  --audience AUD   the aud the token must carry (with --config: default
                   each issuer's audience, else the sidecar's service)
  --profile P      ${PROFILE_NAMES.join(', ')} (default rfc9068)
  --json           one JSON object instead of text

Exit status: 0 accepted, 1 refused, 2 usage, 78 bad configuration.`;

export const tokenCommand: Command = {
  summary: 'check a token against an issuer profile and show the identity it carries',
  help: HELP,
  subcommands: ['check'],
  helpFor: async () => HELP,
  async run(args, context) {
    const [sub, ...rest] = args;
    if (sub !== 'check')
      throw new UsageError(`expected 'baton token check', got ${sub === undefined ? 'no subcommand' : `'${sub}'`}`);
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: 'string' },
        issuer: { type: 'string' },
        audience: { type: 'string' },
        profile: { type: 'string' },
        'jwks-uri': { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    });
    if (positionals.length > 1) throw new UsageError(`expected at most one TOKEN, got ${positionals.length}`);
    if ((values.config === undefined) === (values.issuer === undefined))
      throw new UsageError('expected exactly one of --config or --issuer');
    if (values.profile !== undefined && !(PROFILE_NAMES as readonly string[]).includes(values.profile)) {
      throw new UsageError(`expected --profile to be one of ${PROFILE_NAMES.join(', ')}, got '${values.profile}'`);
    }
    const { issuers, audience } =
      values.config !== undefined ? fromConfig(values.config, values.audience, context) : fromFlags(values);
    const token = (
      positionals[0] === undefined || positionals[0] === '-' ? await readStdin(context) : positionals[0]
    ).trim();
    if (token === '') throw new UsageError('expected a token as the argument or on stdin, got nothing');

    const verifier = createAccessTokenVerifier({ issuers, maxActDepth: DEFAULT_MAX_CHAIN_DEPTH });
    try {
      await Promise.all(issuers.map((i) => i.keys.refresh()));
      const verified = await verifier.verify(token, { audience });
      const profile = issuers.find((i) => i.issuer === verified.issuer)?.profile?.name ?? 'rfc9068';
      context.stdout.write(
        values.json ? JSON.stringify(describeAccepted(verified, profile)) + '\n' : formatAccepted(verified, profile),
      );
      return 0;
    } catch (error) {
      if (!isTokenError(error)) throw error;
      // Token errors name the claim at fault, never the token.
      // As a problem document says it: the code, its sub-cause when it names one, and the message as `detail`.
      context.stdout.write(
        values.json
          ? JSON.stringify({ accepted: false, code: error.code, reason: error.reason, detail: error.message }) + '\n'
          : `refused: ${error.code}${error.reason === undefined ? '' : ` (${error.reason})`}: ${error.message}\n`,
      );
      return 1;
    } finally {
      for (const issuer of issuers) issuer.keys.close();
    }
  },
};

function fromConfig(
  file: string,
  audienceFlag: string | undefined,
  context: CliContext,
): { issuers: TrustedIssuer[]; audience: string } {
  const config = loadConfig(SidecarConfigSchema, { file, env: context.env, otherParts: partVariables() });
  if (config.externalIssuers.length === 0)
    throw new ConfigError(
      file,
      'externalIssuers',
      'at least one external issuer (an entrypoint sidecar config)',
      'none',
    );
  // The verdict is the output; fetch and introspection failures surface as its error code, not as log lines.
  const logger = createLogger({ name: 'baton-token-check', level: 'silent' });
  const issuers = config.externalIssuers.map((e): TrustedIssuer => {
    const introspector = introspectorOf(e, { logger, now: Date.now });
    return {
      issuer: e.issuer,
      keys: createRemoteKeySource({
        issuer: e.issuer,
        discovery: e.jwksUri === undefined,
        ...(e.jwksUri === undefined ? {} : { jwksUri: e.jwksUri }),
        logger,
      }),
      kind: 'external',
      audience: audienceFlag ?? e.audience ?? config.service,
      profile: profileOf(e),
      ...(introspector === undefined ? {} : { introspector }),
    };
  });
  return { issuers, audience: audienceFlag ?? config.service };
}

function fromFlags(values: {
  issuer?: string | undefined;
  audience?: string | undefined;
  profile?: string | undefined;
  'jwks-uri'?: string | undefined;
}): { issuers: TrustedIssuer[]; audience: string } {
  const issuer = values.issuer as string;
  if (!/^https?:\/\/\S+$/.test(issuer)) throw new UsageError(`expected --issuer to be an http(s) URL, got '${issuer}'`);
  if (values.audience === undefined) throw new UsageError('expected --audience with --issuer');
  const jwksUri = values['jwks-uri'];
  const keys: KeySource = createRemoteKeySource({
    issuer,
    discovery: jwksUri === undefined,
    ...(jwksUri === undefined ? {} : { jwksUri }),
  });
  return {
    issuers: [
      {
        issuer,
        keys,
        kind: 'external',
        audience: values.audience,
        profile: resolveProfile({ profile: (values.profile ?? 'rfc9068') as ProfileName }),
      },
    ],
    audience: values.audience,
  };
}

function describeAccepted(verified: VerifiedToken, profile: string): Record<string, unknown> {
  return {
    accepted: true,
    profile,
    issuer: verified.issuer,
    subject: verified.subject,
    subjectIssuer: verified.subjectIssuer,
    subjectType: verified.user ? 'user' : 'service',
    client: verified.clientId ?? null,
    scopes: [...verified.scopes].sort(),
    acr: verified.acr ?? null,
    expiresAt: new Date(verified.expiresAt * 1000).toISOString(),
  };
}

function formatAccepted(verified: VerifiedToken, profile: string): string {
  const d = describeAccepted(verified, profile);
  return [
    `accepted by profile ${profile} of ${verified.issuer}`,
    // JSON-quoted: a subject with spaces or control characters shows exactly as the app will be told of it.
    `  subject:        ${JSON.stringify(d.subject)}`,
    `  subject issuer: ${verified.subjectIssuer}`,
    `  subject type:   ${String(d.subjectType)}`,
    `  client:         ${verified.clientId === undefined ? '(none)' : JSON.stringify(verified.clientId)}`,
    `  scopes:         ${(d.scopes as string[]).join(' ') || '(none)'}`,
    `  expires:        ${String(d.expiresAt)}`,
    '',
  ].join('\n');
}

async function readStdin(context: CliContext): Promise<string> {
  const stdin = context.stdin;
  if (stdin === undefined) return readFileSync(0, 'utf8');
  try {
    // A token is a few KB; anything far larger is not one.
    return await readBoundedText(stdin, 1024 * 1024);
  } catch (error) {
    if (error instanceof BodyTooLargeError) throw new UsageError('expected a token on stdin, got more than 1 MiB');
    throw error;
  }
}
