import pino, { type DestinationStream, type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

/**
 * Paths pino censors before a line is written (STYLE rule 12: redaction
 * configured, not hoped for). Code must not log tokens in the first place;
 * this is the second line of defence for the places a token could hide.
 */
export const REDACT_PATHS: readonly string[] = [
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  'request.headers.authorization',
  'headers["proxy-authorization"]',
  'token',
  'access_token',
  'subject_token',
  'actor_token',
  'client_secret',
  'client_assertion',
  'clientSecret',
  '*.authorization',
  '*.token',
  '*.access_token',
  '*.subject_token',
  '*.actor_token',
  '*.client_secret',
  '*.client_assertion',
  '*.clientSecret',
];

export interface LoggerSettings {
  readonly name: string;
  readonly level?: string;
  readonly destination?: DestinationStream;
}

export function createLogger(settings: LoggerSettings): Logger {
  const options: LoggerOptions = {
    name: settings.name,
    level: settings.level ?? 'info',
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    base: { service: settings.name },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  return settings.destination === undefined ? pino(options) : pino(options, settings.destination);
}
