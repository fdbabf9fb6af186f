/**
 * Reads the sidecars' audit trail back: the pino JSON line each sidecar
 * writes per call-graph decision (`event: 'decision'`, src/sidecar/edge-check.ts).
 * Log files hold much more than decisions — startup lines, warnings, a
 * container runtime's prefix-less noise — so every line that is not a
 * well-formed decision is skipped and counted, never fatal: a report over
 * a week of logs must not die on one truncated line.
 */
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { AuditLogUnreadableError, BadSinceError } from './errors.ts';


export type AuditOutcome = 'allow' | 'deny' | 'would_deny';
const OUTCOMES: ReadonlySet<string> = new Set<AuditOutcome>(['allow', 'deny', 'would_deny']);

/** One decision a sidecar recorded. */
export interface AuditDecision {
  /** Epoch milliseconds, from pino's `time` (ISO string or epoch number); undefined when absent. */
  readonly time: number | undefined;
  /** The sidecar that decided. */
  readonly service: string;
  readonly direction: 'inbound' | 'outbound';
  /** Callers, origin first, immediate caller last; empty for a token straight from an external IdP. */
  readonly chain: readonly string[];
  readonly target: string;
  readonly method: string | undefined;
  readonly path: string | undefined;
  readonly rule: string;
  readonly decision: AuditOutcome;
  readonly cause: string | undefined;
  readonly txn: string | undefined;
  /** Whether a user was the subject; undefined in lines written before the field existed. */
  readonly user: boolean | undefined;
  /** The token's scopes; undefined in lines written before the field existed. */
  readonly scopes: readonly string[] | undefined;
  /** The token's acr; null when it had none; undefined in lines written before the field existed. */
  readonly acr: string | null | undefined;
  /** The issuer that authenticated the subject; undefined in lines written before the field existed. */
  readonly subjectIssuer: string | undefined;
}

export interface AuditLogOptions {
  /** Epoch milliseconds: lines older than this are left out (lines without a time are kept). */
  readonly since?: number | undefined;
}

export interface AuditLog {
  readonly decisions: AuditDecision[];
  readonly files: number;
  /** Lines that were not decision lines (other events, non-JSON, malformed). */
  readonly skipped: number;
  /** Decision lines older than `since`. */
  readonly tooOld: number;
}

// Bounds for text that came from request-controlled fields: a hostile path must not blow up a report.
const MAX_FIELD = 2048;
const MAX_CHAIN = 64;
const MAX_DIR_DEPTH = 8;

/** Parses one log line; undefined for anything that is not a sidecar decision line. */
export function parseAuditLine(line: string): AuditDecision | undefined {
  const start = line.indexOf('{');
  // Cheap pre-filter: most lines of a busy log are not decisions.
  if (start === -1 || !line.includes('"decision"')) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(start === 0 ? line : line.slice(start));
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const record = value as Record<string, unknown>;
  if (record.event !== 'decision') return undefined;
  const { direction, target, rule, decision, chain } = record;
  if (direction !== 'inbound' && direction !== 'outbound') return undefined;
  if (!isText(target) || !isText(rule) || typeof decision !== 'string' || !OUTCOMES.has(decision)) return undefined;
  if (!Array.isArray(chain) || chain.length > MAX_CHAIN || !chain.every(isText)) return undefined;
  const service = isText(record.service) ? record.service : direction === 'inbound' ? target : (chain[chain.length - 1] as string | undefined);
  if (service === undefined) return undefined;
  const scopes = Array.isArray(record.scopes) && record.scopes.every(isText) ? (record.scopes as string[]) : typeof record.scopes === 'string' ? record.scopes.split(' ').filter((s) => s !== '') : undefined;
  return {
    time: timeOf(record.time),
    service,
    direction,
    chain: chain as string[],
    target,
    method: optionalText(record.method),
    path: optionalText(record.path),
    rule,
    decision: decision as AuditOutcome,
    cause: optionalText(record.cause),
    txn: optionalText(record.txn),
    user: typeof record.user === 'boolean' ? record.user : undefined,
    scopes,
    acr: record.acr === null ? null : optionalText(record.acr),
    subjectIssuer: optionalText(record.subjectIssuer),
  };
}

/** Reads every decision line from files and directories (walked recursively, dot-entries skipped). */
export async function readAuditLogs(paths: readonly string[], options: AuditLogOptions = {}): Promise<AuditLog> {
  const files = paths.flatMap((path) => listFiles(path, 0));
  const decisions: AuditDecision[] = [];
  let skipped = 0;
  let tooOld = 0;
  for (const file of [...new Set(files)]) {
    const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
    for await (const line of lines) {
      const decision = parseAuditLine(line);
      if (decision === undefined) skipped++;
      else if (options.since !== undefined && decision.time !== undefined && decision.time < options.since) tooOld++;
      else decisions.push(decision);
    }
  }
  decisions.sort((a, b) => (a.time ?? 0) - (b.time ?? 0));
  return { decisions, files: new Set(files).size, skipped, tooOld };
}

/**
 * `--since`: an ISO 8601 time (`2025-01-31T12:00:00Z`) or a duration before
 * `now` (`90s`, `30m`, `12h`, `7d`). Returns epoch milliseconds.
 */
export function parseSince(text: string, now: number): number {
  const duration = /^(\d{1,9})(s|m|h|d)$/.exec(text.trim());
  if (duration !== null) {
    const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[duration[2] as 's' | 'm' | 'h' | 'd'];
    return now - Number(duration[1]) * unit;
  }
  // Date.parse accepts too much (e.g. "1"); ask for at least a full date.
  const time = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(time)) throw new BadSinceError(`expected --since as an ISO 8601 time or a duration like 30m, 12h, 7d; got '${text.slice(0, 64)}'`);
  return time;
}

function listFiles(path: string, depth: number): string[] {
  let stat;
  try {
    stat = statSync(path);
  } catch (error) {
    throw new AuditLogUnreadableError(`expected a readable log file or directory, got ${(error as NodeJS.ErrnoException).code ?? 'an error'} for ${path}`, { cause: error });
  }
  if (stat.isFile()) return [path];
  if (!stat.isDirectory() || depth >= MAX_DIR_DEPTH) return [];
  return readdirSync(path)
    .filter((name) => !name.startsWith('.'))
    .sort()
    .flatMap((name) => listFiles(join(path, name), depth + 1));
}

function timeOf(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value !== 'string') return undefined;
  const time = Date.parse(value);
  return Number.isNaN(time) ? undefined : time;
}

function isText(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_FIELD;
}

function optionalText(value: unknown): string | undefined {
  return isText(value) ? value : undefined;
}
