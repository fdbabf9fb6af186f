/**
 * The webhook's certificate, re-read when its files change. cert-manager and
 * the kubelet rotate a mounted Secret by swapping a `..data` symlink, which
 * file watchers can miss, so the files are checked on an interval as well as
 * on watch events; a changed pair that does not load keeps the old one.
 *
 * A rotation renews the certificate; it never changes whom it names. A new
 * certificate for other names (the API server checks the webhook Service's
 * DNS name) is refused like the sidecars' SPIFFE ID change (issue #23): the
 * current one is kept while it is valid, the refusal is logged at error
 * level once per pair of files, and once the current one expires `/readyz`
 * fails naming the file and both sets of names.
 */
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';

export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
}

export interface TlsFiles {
  current(): TlsMaterial;
  /** Calls `listener` with each new, valid pair. */
  onChange(listener: (material: TlsMaterial) => void): void;
  /** Why the webhook cannot serve (its certificate has expired, and why no renewal was taken), or undefined. */
  problem(): string | undefined;
  close(): void;
}

export function loadTlsFiles(paths: { cert: string; key: string }): TlsMaterial {
  const material = { cert: readFileSync(paths.cert), key: readFileSync(paths.key) };
  const certificate = new X509Certificate(material.cert);
  // A pair half-way through a rotation (new cert, old key) must not replace a working one.
  if (!certificate.checkPrivateKey(createPrivateKey(material.key)))
    throw new Error(`the private key in ${paths.key} does not match the certificate in ${paths.cert}`);
  return material;
}

export function watchTlsFiles(
  paths: { cert: string; key: string; reloadIntervalMs: number; now?: () => number },
  logger: Logger,
): TlsFiles {
  const now = paths.now ?? Date.now;
  let material = loadTlsFiles(paths);
  let certificate = new X509Certificate(material.cert);
  let fingerprint = fingerprintOf(material);
  let refused: { fingerprint: string; why: string } | undefined;
  const listeners: Array<(m: TlsMaterial) => void> = [];
  const check = (): void => {
    let next: TlsMaterial;
    try {
      next = { cert: readFileSync(paths.cert), key: readFileSync(paths.key) };
      const nextFingerprint = fingerprintOf(next);
      if (nextFingerprint === fingerprint || nextFingerprint === refused?.fingerprint) return;
      next = loadTlsFiles(paths);
      const offered = namesOf(new X509Certificate(next.cert));
      const names = namesOf(certificate);
      if (offered !== names) {
        const why = `expected ${paths.cert} to keep the names ${names || '(none)'}, got a certificate for ${offered || '(none)'}: a rotation must keep them; keeping the current certificate until it expires at ${new Date(certificate.validTo).toISOString()}`;
        refused = { fingerprint: nextFingerprint, why };
        logger.error({ event: 'tls_rotation_refused', file: paths.cert, current: names, offered }, why);
        return;
      }
    } catch (error) {
      logger.warn(
        { event: 'tls_reload_failed', err: error instanceof Error ? error.message : String(error) },
        'keeping the current certificate',
      );
      return;
    }
    material = next;
    certificate = new X509Certificate(next.cert);
    fingerprint = fingerprintOf(next);
    refused = undefined;
    logger.info({ event: 'tls_reloaded', notAfter: certificate.validTo }, 'webhook certificate reloaded');
    for (const listener of listeners) listener(next);
  };
  const timer = setInterval(check, paths.reloadIntervalMs);
  timer.unref();
  const watchers: FSWatcher[] = [];
  for (const dir of new Set([dirname(paths.cert), dirname(paths.key)])) {
    try {
      watchers.push(watch(dir, { persistent: false }, () => check()));
    } catch {
      // the interval still notices the change
    }
  }
  return {
    current: () => material,
    onChange: (listener) => void listeners.push(listener),
    problem() {
      if (now() < Date.parse(certificate.validTo)) return undefined;
      return `the webhook certificate in ${paths.cert} expired at ${new Date(certificate.validTo).toISOString()}${refused === undefined ? '' : `; its renewal was refused: ${refused.why}`}`;
    },
    close() {
      clearInterval(timer);
      for (const watcher of watchers) watcher.close();
    },
  };
}

function fingerprintOf(material: TlsMaterial): string {
  return createHash('sha256').update(material.cert).update('\0').update(material.key).digest('hex');
}

/** The subject alternative names, in one order: what a TLS client checks the webhook against. */
function namesOf(certificate: X509Certificate): string {
  return (certificate.subjectAltName ?? '')
    .split(', ')
    .filter((name) => name !== '')
    .sort()
    .join(', ');
}
