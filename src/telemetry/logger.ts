import { isSpanContextValid, trace } from '@opentelemetry/api';
import pino, { type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { createLineWriter, type LineWriter } from './line-writer.ts';

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
  /** Stamp each line with the active span's ids (default true). False where tracing is off: no span is ever active, and the per-line merge costs the audit line about a tenth of its time. */
  readonly traceIds?: boolean;
}

/**
 * Lines go to stdout through a batching writer (./line-writer.ts): lines
 * gather until 16 KiB are held or FLUSH_MS has passed, then go out in one
 * write(2), so under load the per-decision audit line costs an array push,
 * not a system call or a thread-pool round trip of its own. Nothing is
 * dropped, nothing is in flight on another thread; what is held is written
 * synchronously when the process exits (the writer's exit hook), which
 * covers SIGTERM (the CLI drains, then exits) and a thrown error, not
 * SIGKILL.
 */
export function createLogger(settings: LoggerSettings): Logger {
  const options: LoggerOptions = {
    name: settings.name,
    level: settings.level ?? 'info',
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    base: { service: settings.name },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    ...(settings.traceIds === false ? {} : { mixin: traceIds }),
  };
  return pino(options, settings.destination ?? stdout());
}

/**
 * `trace_id` and `span_id` of the active span on every line written inside
 * one (the audit lines among them), so a log line and its trace join. With
 * the SDK off there is no active span and this returns at once.
 */
function traceIds(): object {
  const span = trace.getActiveSpan();
  // pino merges the line's fields into what the mixin returns, so it must be a fresh object each time.
  if (span === undefined) return {};
  const spanContext = span.spanContext();
  return isSpanContextValid(spanContext) ? { trace_id: spanContext.traceId, span_id: spanContext.spanId } : {};
}

/** The longest a quiet process holds a line before writing it. */
export const FLUSH_MS = 200;
/** One write(2) per this many characters of lines: ≈ 40 audit lines (#28). */
const BATCH_BYTES = 16 * 1024;

let stdoutWriter: LineWriter | undefined;

/**
 * The process's one stdout writer, shared by every logger it makes, so lines keep their order across loggers;
 * what it holds is written when the process exits.
 */
function stdout(): DestinationStream {
  if (stdoutWriter === undefined) {
    const writer = createLineWriter({ fd: 1, batchBytes: BATCH_BYTES, flushMs: FLUSH_MS });
    process.on('exit', () => writer.flushSync());
    stdoutWriter = writer;
  }
  return stdoutWriter;
}
