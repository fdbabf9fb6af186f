/**
 * Reads the sidecars' audit trail back: the pino JSON line each sidecar
 * writes per call-graph decision (`event: 'decision'`, parsed by
 * src/telemetry/audit-event.ts, the one parser of audit lines).
 * Log files hold much more than decisions — startup lines, warnings, a
 * container runtime's prefix-less noise — so every line that is not a
 * well-formed decision is skipped and counted, never fatal: a report over
 * a week of logs must not die on one truncated line.
 */
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseAuditLine, type SidecarDecisionEvent } from '../../telemetry/audit-event.ts';
import { AuditInputInvalidError } from '../../telemetry/errors.ts';

/** One call-graph decision a sidecar recorded, with when and by which sidecar. */
export type AuditDecision = SidecarDecisionEvent & {
  /** Epoch milliseconds, from pino's `time`; undefined when absent. */
  readonly time: number | undefined;
  /** The sidecar that decided. */
  readonly service: string;
};

const MAX_DIR_DEPTH = 8;

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

/** Parses one log line; undefined for anything that is not a sidecar decision line (src/telemetry/audit-event.ts). */
export function parseDecisionLine(text: string): AuditDecision | undefined {
  const line = parseAuditLine(text);
  if (line === undefined || line.audit.event !== 'decision') return undefined;
  return { ...line.audit, time: line.time, service: line.service };
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
      const decision = parseDecisionLine(line);
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
  if (Number.isNaN(time))
    throw new AuditInputInvalidError(
      `expected --since as an ISO 8601 time or a duration like 30m, 12h, 7d; got '${text.slice(0, 64)}'`,
      { reason: 'since' },
    );
  return time;
}

function listFiles(path: string, depth: number): string[] {
  let stat;
  try {
    stat = statSync(path);
  } catch (error) {
    throw new AuditInputInvalidError(
      `expected a readable log file or directory, got ${(error as NodeJS.ErrnoException).code ?? 'an error'} for ${path}`,
      { cause: error, reason: 'unreadable' },
    );
  }
  if (stat.isFile()) return [path];
  if (!stat.isDirectory() || depth >= MAX_DIR_DEPTH) return [];
  return readdirSync(path)
    .filter((name) => !name.startsWith('.'))
    .sort()
    .flatMap((name) => listFiles(join(path, name), depth + 1));
}
