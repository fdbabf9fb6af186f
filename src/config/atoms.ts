/**
 * Schema pieces every part's config.ts shares, written once so that a port,
 * a log level or a service name means the same thing in each. A part's
 * config.ts composes them; it keeps its own defaults and descriptions.
 */
import { type TInteger, type TLiteral, type TString, type TUnion, Type } from '@sinclair/typebox';
import { DNS1123_LABEL_PATTERN, SERVICE_NAME_PATTERN } from '../core/dns-label.ts';

/**
 * A port this process listens on. 0 asks the kernel for a free one: the
 * sidecar, the STS, the policy server and the injector all log the port
 * they got, which is what tests and the demo mesh rely on.
 */
export function ListenPort(
  fallback: number | undefined,
  description = 'a TCP port to listen on (0-65535; 0 picks a free one)',
): TInteger {
  return Type.Integer({
    minimum: 0,
    maximum: 65535,
    ...(fallback === undefined ? {} : { default: fallback }),
    description,
  });
}

/** A port another process listens on and this one connects to or writes into a manifest: 0 names no port there. */
export function Port(description = 'a TCP port (1-65535)'): TInteger {
  return Type.Integer({ minimum: 1, maximum: 65535, description });
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

function logLevels(options: {
  readonly default?: LogLevel;
  readonly description: string;
}): TUnion<TLiteral<LogLevel>[]> {
  return Type.Union(
    LOG_LEVELS.map((level) => Type.Literal(level)),
    options,
  );
}

/** A pino log level; `silent` turns logging off. */
export const LogLevel = logLevels({ default: 'info', description: LOG_LEVELS.join(' | ') });

/** A log level with no default here: another part's default applies when it is absent. */
export const LogLevelChoice = (description: string): TUnion<TLiteral<LogLevel>[]> =>
  logLevels({ description: `${description} (${LOG_LEVELS.join(' | ')})` });

/** A DNS-1123 label: a namespace, a ServiceAccount, an unqualified service name. */
export function Dns1123Label(description: string): TString {
  return Type.String({ pattern: DNS1123_LABEL_PATTERN, description });
}

/** A service name (src/core/service-name.ts): `orders` in the home namespace, `orders.shop` in namespace shop. */
export function ServiceNameText(description: string): TString {
  return Type.String({ pattern: SERVICE_NAME_PATTERN, description });
}

/** A DNS-1123 subdomain, what Kubernetes takes as a Secret or ConfigMap name: labels joined by dots, 253 characters at most. */
export const Dns1123Subdomain = { pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$', maxLength: 253 } as const;

export const HttpUrl = Type.String({ pattern: '^https?://[^\\s]+$', description: 'an http(s) URL' });

/** A workload's SPIFFE ID: spiffe://<trust domain>/<path> (SPIFFE-ID §2); parseSpiffeId checks the rest where it is used. */
export const SpiffeIdText = Type.String({
  pattern: '^spiffe://[a-z0-9._-]+/[^\\s]+$',
  description: 'a SPIFFE ID (spiffe://<trust domain>/<path>)',
});

/** A duration in whole milliseconds, at least `minimum` (1 unless said). */
export function Milliseconds(
  fallback: number,
  description: string,
  bounds: { readonly minimum?: number; readonly maximum?: number } = {},
): TInteger {
  return Type.Integer({
    minimum: bounds.minimum ?? 1,
    ...(bounds.maximum === undefined ? {} : { maximum: bounds.maximum }),
    default: fallback,
    description,
  });
}

/** A duration in whole seconds, at least `minimum` (1 unless said): the same integer schema as `Milliseconds`, the unit in the name. */
export const Seconds = Milliseconds;
