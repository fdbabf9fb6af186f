/**
 * A workload's identity, read from the files that cert-manager's
 * csi-driver-spiffe or SPIRE's spiffe-helper keep fresh in the pod, and
 * re-read when they change. Those agents rotate every hour or so, by
 * swapping a symlink (csi) or rewriting the files (spiffe-helper), which
 * file watchers can miss, so the files are checked on an interval as well
 * as on watch events. A set of files that does not parse (say, half-way
 * through a rotation: new certificate, old key) never replaces a working
 * identity; the next check tries again.
 *
 * A rotation renews a certificate; it never changes who the workload is. New
 * files that name another SPIFFE ID than the identity in use (another
 * service's certificate written into this pod's volume) are refused: the
 * current identity is kept while it is valid, the refusal is logged at error
 * level once per set of files and counted, and once the current certificate
 * expires the part is not ready, saying which file named which ID (issue #23).
 *
 * Readiness follows the identity, never the files: no identity, or an
 * expired one, is not ready, and nothing falls back to plaintext (DESIGN,
 * "Second round").
 */
import { createHash } from 'node:crypto';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { IdentityError, type Validity } from './errors.ts';
import { parseSvid, type Svid, type SvidPem } from './svid.ts';

export interface WorkloadIdentityFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly bundleFile: string;
}

export interface WorkloadIdentityOptions extends WorkloadIdentityFiles {
  /** Interval of the stat-free content check, in milliseconds. */
  readonly pollIntervalMs: number;
  /** Below this share of its lifetime left, the identity is reported as near expiry. */
  readonly nearExpiryFraction: number;
  readonly logger: Logger;
  /** Epoch milliseconds. */
  readonly now: () => number;
}

export type IdentityState = 'ready' | 'near_expiry' | 'missing' | 'expired' | 'not_yet_valid';

export interface IdentityStatus {
  readonly state: IdentityState;
  /** Why the identity is not ready, or the last reload's failure (a code, never key material). */
  readonly reason?: string;
  /** That failure in a sentence naming files and SPIFFE IDs, never key material. */
  readonly detail?: string;
  /** Rotations refused because the new certificate named another SPIFFE ID; absent when none. */
  readonly refusedRotations?: number;
  /** Seconds until the current certificate expires; absent when there is none. */
  readonly expiresInSeconds?: number;
  /** Epoch milliseconds the current certificate expires at; absent when there is none. */
  readonly notAfter?: number;
  /**
   * When the identity is not usable: one sentence naming the file, what is
   * wrong with it (missing, unreadable, expired or not yet valid, with its
   * validity dates, or unusable) and what to do, for the part's NOT READY
   * line and its /readyz. Never key material.
   */
  readonly problem?: string;
}

export interface WorkloadIdentity {
  /** The current identity while it is valid, else undefined: callers must refuse, not fall back. */
  current(): Svid | undefined;
  status(): IdentityStatus;
  /** Called with each new valid identity (a rotation); returns an unsubscribe. */
  onRotate(listener: (svid: Svid) => void): () => void;
  /** Reads the files now; resolves whether or not they were usable. */
  reload(): void;
  close(): void;
}

export function readSvidFiles(files: WorkloadIdentityFiles): SvidPem {
  const read = (path: string, what: string): string => {
    try {
      return readFileSync(path, 'utf8');
    } catch (error) {
      const errno = (error as NodeJS.ErrnoException).code;
      throw new IdentityError(
        'BATON_IDENTITY_MISSING',
        `expected ${what} at ${path}, got ${errno ?? 'an unreadable file'}`,
        { file: path, ...(errno === undefined ? {} : { errno }) },
      );
    }
  };
  return {
    cert: read(files.certFile, 'a certificate file'),
    key: read(files.keyFile, 'a private key file'),
    bundle: read(files.bundleFile, 'a trust bundle file'),
  };
}

export function createWorkloadIdentity(options: WorkloadIdentityOptions): WorkloadIdentity {
  const { logger, now } = options;
  let svid: Svid | undefined;
  let digest = '';
  let lastFailure: IdentityError | undefined;
  // The files last refused for naming another SPIFFE ID: not parsed again until they change.
  let refusedDigest = '';
  let refusedRotations = 0;
  const listeners = new Set<(svid: Svid) => void>();

  const reload = (): void => {
    let pem: SvidPem;
    let next: Svid;
    try {
      pem = readSvidFiles(options);
      const nextDigest = digestOf(pem);
      if (svid !== undefined && nextDigest === digest) {
        // The files are the identity in use (again): nothing is failing now.
        lastFailure = undefined;
        refusedDigest = '';
        return;
      }
      if (nextDigest === refusedDigest) return;
      next = parseSvid(pem, now());
      if (svid !== undefined && next.spiffeId !== svid.spiffeId) {
        refusedDigest = nextDigest;
        refusedRotations++;
        const failure = new IdentityError(
          'BATON_IDENTITY_ID_CHANGED',
          `expected ${options.certFile} to keep the SPIFFE ID ${svid.spiffeId}, got a certificate for ${next.spiffeId}: a rotation must keep the ID; keeping ${svid.spiffeId} until it expires at ${new Date(svid.notAfter).toISOString()}`,
        );
        logger.error(
          {
            event: 'identity_rotation_refused',
            code: failure.code,
            file: options.certFile,
            current: svid.spiffeId,
            offered: next.spiffeId,
            notAfter: new Date(svid.notAfter).toISOString(),
          },
          failure.message,
        );
        lastFailure = failure;
        return;
      }
      digest = nextDigest;
    } catch (error) {
      const failure =
        error instanceof IdentityError ? error : new IdentityError('BATON_IDENTITY_INVALID', String(error));
      if (failure.code !== lastFailure?.code || failure.message !== lastFailure.message) {
        logger.warn(
          { event: 'identity_reload_failed', code: failure.code, err: failure.message },
          svid === undefined ? 'no workload identity yet' : 'keeping the current workload identity',
        );
      }
      lastFailure = failure;
      return;
    }
    refusedDigest = '';
    lastFailure = undefined;
    const rotated = svid !== undefined;
    svid = next;
    logger.info(
      {
        event: rotated ? 'identity_rotated' : 'identity_loaded',
        spiffeId: next.spiffeId,
        notAfter: new Date(next.notAfter).toISOString(),
      },
      rotated ? 'workload identity rotated' : 'workload identity loaded',
    );
    for (const listener of listeners) listener(next);
  };

  reload();
  const timer = setInterval(reload, options.pollIntervalMs);
  timer.unref();
  const watchers: FSWatcher[] = [];
  for (const dir of new Set([dirname(options.certFile), dirname(options.keyFile), dirname(options.bundleFile)])) {
    try {
      watchers.push(watch(dir, { persistent: false }, reload));
    } catch {
      // The interval still notices the change (and a directory that appears later).
    }
  }

  const valid = (): Svid | undefined =>
    svid !== undefined && now() < svid.notAfter && now() >= svid.notBefore ? svid : undefined;

  return {
    current: valid,
    status() {
      const failure = lastFailure === undefined ? {} : { reason: lastFailure.code, detail: lastFailure.message };
      const refused = refusedRotations === 0 ? {} : { refusedRotations };
      const at = now();
      if (svid === undefined) {
        // The files hold a certificate, but outside its window: say so, with its dates, not "missing".
        const window = lastFailure?.validity;
        if (window !== undefined) {
          const state = at < window.notBefore ? 'not_yet_valid' : 'expired';
          const status = {
            state,
            ...failure,
            expiresInSeconds: Math.floor((window.notAfter - at) / 1000),
            notAfter: window.notAfter,
            ...refused,
          } as const;
          return { ...status, problem: identityProblem(options, state, window, undefined) };
        }
        return {
          state: 'missing',
          reason: 'BATON_IDENTITY_MISSING',
          ...failure,
          ...refused,
          problem: identityProblem(options, 'missing', undefined, lastFailure),
        };
      }
      const left = svid.notAfter - at;
      const expiresInSeconds = Math.floor(left / 1000);
      const notAfter = svid.notAfter;
      if (valid() === undefined) {
        // The one in use ran out (or the clock went back before it): whatever the files hold now did not replace it.
        const state = at < svid.notBefore ? 'not_yet_valid' : 'expired';
        const window = { spiffeId: svid.spiffeId, notBefore: svid.notBefore, notAfter: svid.notAfter };
        return {
          state,
          reason: state === 'expired' ? 'BATON_IDENTITY_EXPIRED' : 'BATON_IDENTITY_NOT_YET_VALID',
          ...failure,
          expiresInSeconds,
          notAfter,
          ...refused,
          problem: identityProblem(options, state, window, lastFailure),
        };
      }
      const nearExpiry = left < (svid.notAfter - svid.notBefore) * options.nearExpiryFraction;
      return { state: nearExpiry ? 'near_expiry' : 'ready', ...failure, expiresInSeconds, notAfter, ...refused };
    },
    onRotate(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    reload,
    close() {
      clearInterval(timer);
      for (const watcher of watchers) watcher.close();
      listeners.clear();
    },
  };
}

/**
 * Why the identity is not usable and what to do, in one sentence: the file,
 * the cause (missing, unreadable, expired or not yet valid with the
 * certificate's window, or not a usable SVID), and the fix. `window`: the
 * certificate out of its window; `failure`: the last reload's failure.
 */
function identityProblem(
  files: WorkloadIdentityFiles,
  state: IdentityState,
  window: Validity | undefined,
  failure: IdentityError | undefined,
): string {
  const since = failure === undefined || failure.validity !== undefined ? '' : `; the files now: ${failure.message}`;
  if (window !== undefined) {
    const dates = `${window.spiffeId}, valid from ${new Date(window.notBefore).toISOString()} to ${new Date(window.notAfter).toISOString()}`;
    // No clock reading in the sentence: it is announced once per change, and /readyz shows the time left.
    if (state === 'not_yet_valid') {
      return `workload certificate not valid yet: ${files.certFile} (${dates})${since}. This machine's clock is behind its issuer's (check NTP), or the certificate was issued for later`;
    }
    return `workload certificate expired: ${files.certFile} (${dates})${since}. Renew it: csi-driver-spiffe and SPIRE rotate it before it expires, so check that their agent runs here; for development run 'baton certs' again`;
  }
  if (failure === undefined) return `no workload certificate loaded yet from ${files.certFile}`;
  if (failure.code === 'BATON_IDENTITY_MISSING' && (failure.errno === 'EACCES' || failure.errno === 'EPERM')) {
    return `workload identity unreadable: ${failure.message}. Let this process's user read the files (in Kubernetes: the pod's fsGroup, or the CSI volume's fs-group attribute)`;
  }
  if (failure.code === 'BATON_IDENTITY_MISSING') {
    return `no workload certificate: ${failure.message}. Mount the identity there (csi-driver-spiffe or SPIRE's spiffe-helper; for development 'baton certs'), or point identity.certFile, identity.keyFile and identity.bundleFile at it`;
  }
  return `workload identity unusable (${failure.code}): ${failure.message}; files ${files.certFile}, ${files.keyFile}, ${files.bundleFile}`;
}

function digestOf(pem: SvidPem): string {
  return createHash('sha256')
    .update(pem.cert)
    .update('\0')
    .update(pem.key)
    .update('\0')
    .update(pem.bundle)
    .digest('hex');
}
