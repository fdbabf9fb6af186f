/**
 * The webhook's certificate, re-read when its files change. cert-manager and
 * the kubelet rotate a mounted Secret by swapping a `..data` symlink, which
 * file watchers can miss, so the files are checked on an interval as well as
 * on watch events; a changed pair that does not load keeps the old one.
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
  close(): void;
}

export function loadTlsFiles(paths: { cert: string; key: string }): TlsMaterial {
  const material = { cert: readFileSync(paths.cert), key: readFileSync(paths.key) };
  const certificate = new X509Certificate(material.cert);
  // A pair half-way through a rotation (new cert, old key) must not replace a working one.
  if (!certificate.checkPrivateKey(createPrivateKey(material.key))) throw new Error(`the private key in ${paths.key} does not match the certificate in ${paths.cert}`);
  return material;
}

export function watchTlsFiles(paths: { cert: string; key: string; reloadIntervalMs: number }, logger: Logger): TlsFiles {
  let material = loadTlsFiles(paths);
  let fingerprint = fingerprintOf(material);
  const listeners: Array<(m: TlsMaterial) => void> = [];
  const check = (): void => {
    let next: TlsMaterial;
    try {
      next = { cert: readFileSync(paths.cert), key: readFileSync(paths.key) };
      if (fingerprintOf(next) === fingerprint) return;
      next = loadTlsFiles(paths);
    } catch (error) {
      logger.warn({ event: 'tls_reload_failed', err: error instanceof Error ? error.message : String(error) }, 'keeping the current certificate');
      return;
    }
    material = next;
    fingerprint = fingerprintOf(next);
    logger.info({ event: 'tls_reloaded', notAfter: new X509Certificate(next.cert).validTo }, 'webhook certificate reloaded');
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
    close() {
      clearInterval(timer);
      for (const watcher of watchers) watcher.close();
    },
  };
}

function fingerprintOf(material: TlsMaterial): string {
  return createHash('sha256').update(material.cert).update('\0').update(material.key).digest('hex');
}
