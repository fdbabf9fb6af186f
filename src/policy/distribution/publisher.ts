/**
 * What the policy server publishes: each policy the watcher loads, numbered
 * with a version that never goes backwards (across restarts too, with a
 * state file), signed as a JWS, and handed to the long polls waiting for
 * it. Versions are signed and published in the order they were numbered;
 * a policy that cannot be signed leaves the previous version served. The
 * current version is re-signed with a fresh `issuedAt` every
 * `reissueSeconds`, so clients that refuse old documents keep accepting an
 * unchanged policy. No HTTP here: the server (./server.ts) serves what this
 * publishes.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { LoadedPolicy } from '../language/load.ts';
import { policyToJSON } from '../language/parse.ts';
import { DEFAULT_REISSUE_SECONDS } from './config.ts';
import { type PolicySigningKey, signPolicy } from './signing.ts';
import type { PolicyWatcher } from './watch.ts';

/** One signed version, ready to send as-is to every client. */
export interface PublishedPolicy {
  readonly version: number;
  readonly digest: string;
  readonly etag: string;
  readonly jws: string;
  /** The signed policy's JSON form, kept to re-sign it with a fresh issuedAt. */
  readonly policy: unknown;
  /** Epoch seconds in the signed payload. */
  readonly issuedAt: number;
}

export interface VersionCounter {
  /** The next version; strictly greater than every earlier one, across restarts too. */
  next(): number;
}

/**
 * Versions are `max(previous + 1, now in epoch seconds)`. With a state file
 * the previous version survives restarts, so versions never go backwards
 * even if the clock does; without one, the clock alone keeps a restarted
 * server ahead of what it served before, as long as it did not publish more
 * than one version per second on average.
 */
export function createVersionCounter(options: {
  readonly stateFile?: string | undefined;
  readonly now: () => number;
}): VersionCounter {
  const { stateFile, now } = options;
  let previous = stateFile === undefined ? 0 : readState(stateFile);
  return {
    next() {
      const version = Math.max(previous + 1, Math.floor(now() / 1000));
      if (stateFile !== undefined) writeState(stateFile, version);
      previous = version;
      return version;
    },
  };
}

function readState(stateFile: string): number {
  let text: string;
  try {
    text = readFileSync(stateFile, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
  const version: unknown = (JSON.parse(text) as { version?: unknown }).version;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0) {
    throw new Error(`${stateFile}: expected {"version": <non-negative integer>}`);
  }
  return version;
}

function writeState(stateFile: string, version: number): void {
  // Write then rename: a crash mid-write must not leave a truncated counter.
  const temporary = `${stateFile}.${process.pid}.tmp`;
  writeFileSync(temporary, JSON.stringify({ version }) + '\n');
  renameSync(temporary, stateFile);
}

export interface PolicyPublisherOptions {
  readonly watcher: Pick<PolicyWatcher, 'current' | 'onChange'>;
  readonly signingKey: PolicySigningKey;
  readonly versions: VersionCounter;
  readonly logger: Logger;
  /** ms since the epoch. */
  readonly now?: () => number;
  /** Re-sign the current version this often (default 3600); 0 turns it off. */
  readonly reissueSeconds?: number;
}

interface Waiter {
  readonly release: (next: PublishedPolicy | undefined) => void;
}

/** The signed versions a policy server publishes, and the long polls waiting for the next one. */
export interface PolicyPublisher {
  published(): PublishedPolicy | undefined;
  /** Long-polls being held. */
  waiting(): number;
  /** Holds until a newer version, the deadline or `gone` closing (the client went away), whichever is first. */
  next(waitSeconds: number, gone: NodeJS.EventEmitter): Promise<PublishedPolicy | undefined>;
  /** True once close has begun: no new long poll is held. */
  closing(): boolean;
  /** Stops following the watcher, releases every long poll and waits for a signature in progress. */
  close(): Promise<void>;
}

export function createPolicyPublisher(options: PolicyPublisherOptions): PolicyPublisher {
  const { signingKey, versions, logger } = options;
  const now = options.now ?? Date.now;
  const waiters = new Set<Waiter>();
  let published: PublishedPolicy | undefined;
  let publishing: Promise<void> = Promise.resolve();
  let closing = false;

  const publish = (loaded: LoadedPolicy): void => {
    // Serialised, so versions are signed and published in the order they were numbered.
    publishing = publishing
      .then(async () => {
        const version = versions.next();
        const { digest } = loaded.compiled;
        const policy = policyToJSON(loaded.policy);
        const issuedAt = Math.floor(now() / 1000);
        const jws = await signPolicy({ version, digest, issuedAt, policy }, signingKey);
        published = { version, digest, etag: `"v${version}-${digest}"`, jws, policy, issuedAt };
        // The one line per new policy at the server (the watcher reports only failures).
        logger.info({ version, digest, policy: loaded.compiled.name, waiting: waiters.size }, 'policy published');
        for (const waiter of [...waiters]) waiter.release(published);
      })
      .catch((error: unknown) => {
        logger.error({ err: error }, 'policy could not be signed; still serving the previous version');
      });
  };

  const initial = options.watcher.current();
  if (initial !== undefined) publish(initial);
  const unsubscribe = options.watcher.onChange(publish);

  // Same version, same digest, fresh issuedAt: clients refresh its age, nothing else changes (src/policy/distribution/client.ts).
  const reissue = (): void => {
    publishing = publishing
      .then(async () => {
        const current = published;
        if (current === undefined || closing) return;
        const issuedAt = Math.floor(now() / 1000);
        // Within the second it was signed (the timer runs on the loop's cached clock, up to a busy turn early): nothing is fresher yet.
        if (issuedAt <= current.issuedAt) return;
        const jws = await signPolicy(
          { version: current.version, digest: current.digest, issuedAt, policy: current.policy },
          signingKey,
        );
        published = { ...current, etag: `"v${current.version}-${current.digest}-${issuedAt}"`, jws, issuedAt };
        logger.debug({ version: current.version, issuedAt }, 'policy re-issued');
        for (const waiter of [...waiters]) waiter.release(published);
      })
      .catch((error: unknown) => {
        logger.error({ err: error }, 'policy could not be re-signed; still serving the previous signature');
      });
  };
  const reissueSeconds = options.reissueSeconds ?? DEFAULT_REISSUE_SECONDS;
  const reissueTimer = reissueSeconds > 0 ? setInterval(reissue, reissueSeconds * 1000).unref() : undefined;

  return {
    published: () => published,
    waiting: () => waiters.size,
    closing: () => closing,
    next: (waitSeconds, gone) => holdUntilNext(waiters, waitSeconds, gone),
    async close() {
      closing = true;
      clearInterval(reissueTimer);
      unsubscribe();
      for (const waiter of [...waiters]) waiter.release(undefined);
      await publishing;
    },
  };
}

/** One long poll: held in `waiters` until a release (a new version, close), its deadline, or `gone` closing. */
function holdUntilNext(
  waiters: Set<Waiter>,
  waitSeconds: number,
  gone: NodeJS.EventEmitter,
): Promise<PublishedPolicy | undefined> {
  return new Promise((resolve) => {
    const onGone = (): void => waiter.release(undefined);
    const timer = setTimeout(() => waiter.release(undefined), waitSeconds * 1000);
    const waiter: Waiter = {
      release(next) {
        clearTimeout(timer);
        gone.off('close', onGone);
        waiters.delete(waiter);
        resolve(next);
      },
    };
    waiters.add(waiter);
    gone.once('close', onGone);
  });
}
