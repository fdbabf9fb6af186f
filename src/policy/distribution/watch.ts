/**
 * Follows a policy file or directory as it changes on disk and hands on
 * each new *valid* policy. fs.watch is on the directory, not the file,
 * because editors and Kubernetes replace files rather than write them: a
 * ConfigMap volume swaps its `..data` symlink to a new timestamped
 * directory, which a watch on the old file would never see. Any event
 * triggers a debounced re-read; a polling stat check backs fs.watch up,
 * since it can miss events (network filesystems, overlayfs, inotify limits).
 * A policy is published only when it is valid and its digest differs; a bad
 * edit is logged with its file:line:col problems and the last good policy
 * stays.
 */
import { type FSWatcher, readdirSync, realpathSync, statSync, watch } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { formatProblem, PolicyInvalidError } from '../language/errors.ts';
import { type LoadedPolicy, loadPolicyPath } from '../language/load.ts';

export interface PolicyWatcherOptions {
  readonly logger: Logger;
  /** Quiet time after the last event before re-reading; editors write in bursts. Default 100 ms. */
  readonly debounceMs?: number;
  /** Stat check interval for events fs.watch misses; 0 turns it off. Default 2000 ms. */
  readonly pollIntervalMs?: number;
  /** Turn fs.watch off and rely on polling alone. Default true. */
  readonly fsWatch?: boolean;
  /** Reads and compiles the policy; defaults to `loadPolicyPath`. */
  readonly load?: (path: string) => LoadedPolicy;
}

export interface PolicyWatcher {
  /** The last good policy, or undefined while none has loaded. */
  current(): LoadedPolicy | undefined;
  /** Called with each new valid policy whose digest differs from the last. */
  onChange(listener: (loaded: LoadedPolicy) => void): () => void;
  /** Why the last read was refused (its first error as file:line:col, or the reason); undefined after a good read. */
  lastFailure(): string | undefined;
  /** Re-reads now (used at start and by tests); never throws. */
  reload(): void;
  close(): void;
}

export function createPolicyWatcher(path: string, options: PolicyWatcherOptions): PolicyWatcher {
  const { logger } = options;
  const load = options.load ?? loadPolicyPath;
  const debounceMs = options.debounceMs ?? 100;
  const pollIntervalMs = options.pollIntervalMs ?? 2_000;
  const listeners = new Set<(loaded: LoadedPolicy) => void>();
  let current: LoadedPolicy | undefined;
  let lastFailure: string | undefined;
  let lastFailureSummary: string | undefined;
  let fingerprint = fingerprintOf(path);
  let debounce: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  let closed = false;

  const reload = (): void => {
    if (closed) return;
    fingerprint = fingerprintOf(path);
    let loaded: LoadedPolicy;
    try {
      loaded = load(path);
    } catch (error) {
      reportFailure(error);
      return;
    }
    lastFailure = undefined;
    lastFailureSummary = undefined;
    if (current !== undefined && current.compiled.digest === loaded.compiled.digest) return;
    current = loaded;
    for (const warning of loaded.warnings) logger.warn({ path, problem: formatProblem(warning) }, 'policy warning');
    for (const listener of listeners) {
      try {
        listener(loaded);
      } catch (error) {
        logger.error({ err: error }, 'policy change listener failed');
      }
    }
  };

  const reportFailure = (error: unknown): void => {
    const problems =
      error instanceof PolicyInvalidError
        ? error.problems.filter((p) => p.severity === 'error').map(formatProblem)
        : [];
    const reason = error instanceof Error ? error.message : String(error);
    const signature = problems.join('\n') || reason;
    // One log line per distinct failure, not one per poll tick.
    if (signature === lastFailure) return;
    lastFailure = signature;
    lastFailureSummary =
      problems.length > 1 ? `${problems[0]} (and ${problems.length - 1} more)` : (problems[0] ?? reason);
    logger.error(
      { path, problems, reason, keptDigest: current?.compiled.digest },
      current === undefined
        ? 'policy not loaded: no valid policy yet'
        : 'policy change refused: keeping the last good policy',
    );
  };

  const schedule = (): void => {
    if (closed) return;
    if (debounce !== undefined) clearTimeout(debounce);
    debounce = setTimeout(() => {
      debounce = undefined;
      reload();
    }, debounceMs);
    debounce.unref();
  };

  const startWatching = (): void => {
    if (options.fsWatch === false || closed || watcher !== undefined) return;
    const directory = isDirectory(path) ? path : dirname(path);
    try {
      watcher = watch(directory, { persistent: false }, schedule);
      watcher.on('error', (error) => {
        logger.warn({ path, err: error }, 'policy watch failed; polling until it can be re-established');
        watcher?.close();
        watcher = undefined;
      });
    } catch (error) {
      logger.warn({ path, err: error }, 'cannot watch the policy path; polling only');
    }
  };

  const poll =
    pollIntervalMs > 0
      ? setInterval(() => {
          startWatching();
          if (fingerprintOf(path) !== fingerprint) schedule();
        }, pollIntervalMs)
      : undefined;
  poll?.unref();

  reload();
  startWatching();

  return {
    current: () => current,
    lastFailure: () => lastFailureSummary,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    reload,
    close() {
      closed = true;
      if (debounce !== undefined) clearTimeout(debounce);
      if (poll !== undefined) clearInterval(poll);
      watcher?.close();
      watcher = undefined;
      listeners.clear();
    },
  };
}

/**
 * A cheap summary of what is on disk: resolved paths (so a symlink swap
 * shows), sizes, mtimes and inodes. Reading it costs a few stat calls; a
 * change only means "re-read", the digest decides whether anything changed.
 */
function fingerprintOf(path: string): string {
  try {
    if (!isDirectory(path)) return describe(path);
    const entries = readdirSync(path)
      .filter((name) => !name.startsWith('..'))
      .sort();
    return [describe(path), ...entries.map((name) => describe(join(path, name)))].join('|');
  } catch (error) {
    return `error:${(error as NodeJS.ErrnoException).code ?? 'unknown'}`;
  }
}

function describe(path: string): string {
  try {
    const stat = statSync(path);
    return `${realpathSync(path)}:${stat.ino}:${stat.size}:${stat.mtimeMs}`;
  } catch (error) {
    return `${path}:${(error as NodeJS.ErrnoException).code ?? 'error'}`;
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
