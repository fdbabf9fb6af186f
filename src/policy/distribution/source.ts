/**
 * Where a running part (sidecar, STS) gets its policy from: the policy
 * server (client.ts) or a local file (below). Either way the part sees the
 * same interface: the current compiled policy or none, a version, readiness,
 * and a callback per new version. A part without a policy is not ready
 * (DESIGN.md, "policy server down … no policy at start → not ready").
 */
import type { Logger } from 'pino';
import type { CompiledPolicy } from '../language/decision.ts';
import { loadPolicyPath } from '../language/load.ts';
import { createPolicyWatcher, type PolicyWatcher } from './watch.ts';

/** A policy and the version it arrived as, read together (STYLE: values read together are read as one). */
export interface PolicySnapshot {
  readonly policy: CompiledPolicy;
  readonly version: number;
}

export interface PolicySource {
  /** The last good policy; undefined until the first one arrives. */
  current(): CompiledPolicy | undefined;
  version(): number | undefined;
  /** The last good policy with its version, as one value; a request reads this once. */
  snapshot(): PolicySnapshot | undefined;
  ready(): boolean;
  /**
   * Why the last policy offered was refused (unparseable, invalid, badly
   * signed, unreachable), for `/readyz` and a plain start-up line; undefined
   * once one is accepted.
   */
  problem(): string | undefined;
  /** Called once per accepted version; returns the unsubscribe function. */
  onUpdate(listener: (policy: CompiledPolicy, version: number) => void): () => void;
  /** Starts fetching or watching; resolves once the first policy is held (or the source is closed). */
  start(): Promise<void>;
  /** True once a policy is held, false if `timeoutMs` passes first. */
  waitUntilReady(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * The bookkeeping both sources share: holding the policy, notifying
 * listeners, waking whoever waits for readiness. A listener that throws is
 * logged and does not stop the others. Each accepted version is logged here,
 * once (`policy updated`, event `policy_updated`), with what the source
 * adds (the file's path, the signed document's age); nobody else logs it.
 */
export interface PolicyHolder {
  current(): CompiledPolicy | undefined;
  version(): number | undefined;
  snapshot(): PolicySnapshot | undefined;
  accept(policy: CompiledPolicy, version: number, details?: Readonly<Record<string, unknown>>): void;
  onUpdate(listener: (policy: CompiledPolicy, version: number) => void): () => void;
  waitUntilReady(timeoutMs: number): Promise<boolean>;
  /** Resolves once a policy is held or `cancel()` is called. */
  firstPolicy(): Promise<void>;
  cancel(): void;
}

export function createPolicyHolder(logger: Logger): PolicyHolder {
  // One object, swapped whole: a reader never sees a policy with another policy's version.
  let held: PolicySnapshot | undefined;
  const listeners = new Set<(policy: CompiledPolicy, version: number) => void>();
  let settle: () => void = () => undefined;
  const first = new Promise<void>((resolve) => (settle = resolve));
  return {
    current: () => held?.policy,
    version: () => held?.version,
    snapshot: () => held,
    accept(next, nextVersion, details) {
      held = Object.freeze({ policy: next, version: nextVersion });
      logger.info(
        { event: 'policy_updated', policyVersion: nextVersion, policy: next.name, digest: next.digest, ...details },
        'policy updated',
      );
      settle();
      for (const listener of [...listeners]) {
        try {
          listener(next, nextVersion);
        } catch (error) {
          logger.error({ err: error }, 'policy update listener failed');
        }
      }
    },
    onUpdate(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async waitUntilReady(timeoutMs) {
      if (held !== undefined) return true;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
      const result = await Promise.race([first.then(() => held !== undefined), timedOut]);
      clearTimeout(timer);
      return result;
    },
    firstPolicy: () => first,
    cancel: () => settle(),
  };
}

export interface FilePolicySourceOptions {
  readonly logger: Logger;
  /** Hot-reload on edits (watch.ts). Default true. Off: the file is read once, at start. */
  readonly watch?: boolean;
  readonly debounceMs?: number;
  readonly pollIntervalMs?: number;
}

/**
 * A policy read from a local file or ConfigMap directory, for `policy: {
 * file }` configs. Versions count accepted reloads from 1; they are local
 * to this process, unlike the policy server's.
 */
export function createFilePolicySource(path: string, options: FilePolicySourceOptions): PolicySource {
  const { logger } = options;
  const holder = createPolicyHolder(logger);
  let watcher: PolicyWatcher | undefined;
  let closed = false;
  let version = 0;
  return {
    current: holder.current,
    version: holder.version,
    snapshot: holder.snapshot,
    ready: () => !closed && holder.current() !== undefined,
    problem: () => watcher?.lastFailure(),
    onUpdate: holder.onUpdate,
    waitUntilReady: holder.waitUntilReady,
    async start() {
      if (closed || holder.current() !== undefined || watcher !== undefined) return await holder.firstPolicy();
      if (options.watch === false) {
        // Without a watch nothing would ever fix a bad file, so it fails now, loudly.
        holder.accept(loadPolicyPath(path).compiled, ++version, { path });
        return;
      }
      watcher = createPolicyWatcher(path, {
        logger,
        ...(options.debounceMs === undefined ? {} : { debounceMs: options.debounceMs }),
        ...(options.pollIntervalMs === undefined ? {} : { pollIntervalMs: options.pollIntervalMs }),
      });
      watcher.onChange((loaded) => holder.accept(loaded.compiled, ++version, { path }));
      const initial = watcher.current();
      if (initial !== undefined) holder.accept(initial.compiled, ++version, { path });
      await holder.firstPolicy();
    },
    async close() {
      closed = true;
      watcher?.close();
      holder.cancel();
    },
  };
}
