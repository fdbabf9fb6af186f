/**
 * The STS signing keys. The newest key signs; a key rotated out stays in
 * `/jwks` until every token it signed has expired (token TTL plus clock
 * skew after the rotation), so verifiers never meet a token whose key has
 * vanished. Keys are loaded from a directory of PKCS#8 PEM files, or
 * generated: into the directory when it is empty, in memory (dev only)
 * when there is none.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, exportPKCS8, generateKeyPair, type JSONWebKeySet, type JWK } from 'jose';
import type { Logger } from '../telemetry/logger.ts';
import type { SigningAlg } from './config.ts';

export interface SigningKey {
  readonly kid: string;
  readonly alg: SigningAlg;
  readonly privateKey: KeyObject;
  readonly publicJwk: JWK;
}

export interface KeyStore {
  /** The key that signs new tokens. */
  active(): SigningKey;
  /** Every key a live token may have been signed with. */
  jwks(): JSONWebKeySet;
  /** Generates a new signing key; the previous one is kept for verification. */
  rotate(): Promise<SigningKey>;
  onRotate(listener: (jwks: JSONWebKeySet) => void): () => void;
  close(): void;
}

export interface KeyStoreOptions {
  readonly dir?: string | undefined;
  readonly alg: SigningAlg;
  /** How long a rotated-out key stays published: token TTL + clock tolerance. */
  readonly retireAfterSeconds: number;
  readonly rotateEverySeconds?: number | undefined;
  readonly logger: Logger;
  readonly now?: () => number;
}

interface HeldKey {
  readonly key: SigningKey;
  /** Epoch ms after which no live token can carry its signature; undefined while active. */
  retireAt: number | undefined;
  readonly file: string | undefined;
}

const GENERATED_FILE = /^baton-sts-\d+-[A-Za-z0-9_-]+\.key\.pem$/;

export async function createKeyStore(options: KeyStoreOptions): Promise<KeyStore> {
  const now = options.now ?? Date.now;
  const retireAfterMs = options.retireAfterSeconds * 1000;
  const held: HeldKey[] = [];
  const listeners = new Set<(jwks: JSONWebKeySet) => void>();

  if (options.dir === undefined) {
    const key = await generate(options.alg);
    held.push({ key, retireAt: undefined, file: undefined });
    options.logger.warn(
      { kid: key.kid, alg: key.alg },
      'DEVELOPMENT ONLY: no keys.dir configured, generated an in-memory signing key; tokens will not verify after a restart and replicas will not share keys',
    );
  } else {
    mkdirSync(options.dir, { recursive: true, mode: 0o700 });
    const loaded = await loadDir(options.dir);
    if (loaded.length === 0) {
      const key = await generate(options.alg);
      const file = await persist(options.dir, key, now());
      held.push({ key, retireAt: undefined, file });
      options.logger.warn({ kid: key.kid, alg: key.alg, dir: options.dir }, 'no signing key found, generated one into keys.dir');
    } else {
      // Newest file signs; older ones may still have live tokens, so they retire a full TTL from now.
      loaded.sort((a, b) => b.mtimeMs - a.mtimeMs || a.file.localeCompare(b.file));
      loaded.forEach((entry, index) => held.push({ key: entry.key, retireAt: index === 0 ? undefined : now() + retireAfterMs, file: entry.file }));
      options.logger.info({ kid: loaded[0]?.key.kid, alg: loaded[0]?.key.alg, published: loaded.length }, 'signing keys loaded');
    }
  }

  let published = buildJwks();

  function buildJwks(): JSONWebKeySet {
    return Object.freeze({ keys: held.map((h) => h.key.publicJwk) });
  }

  function prune(): void {
    const at = now();
    let changed = false;
    for (let i = held.length - 1; i >= 0; i--) {
      const entry = held[i] as HeldKey;
      if (entry.retireAt !== undefined && entry.retireAt <= at) {
        held.splice(i, 1);
        changed = true;
        if (entry.file !== undefined && GENERATED_FILE.test(entry.file.split('/').pop() ?? '')) {
          try {
            unlinkSync(entry.file);
          } catch {
            // already gone: nothing to retire
          }
        }
        options.logger.info({ kid: entry.key.kid }, 'signing key retired from jwks');
      }
    }
    if (changed) {
      published = buildJwks();
      for (const listener of listeners) listener(published);
    }
  }

  async function rotate(): Promise<SigningKey> {
    const key = await generate(options.alg);
    const file = options.dir === undefined ? undefined : await persist(options.dir, key, now());
    for (const entry of held) entry.retireAt ??= now() + retireAfterMs;
    held.unshift({ key, retireAt: undefined, file });
    published = buildJwks();
    options.logger.info({ kid: key.kid, alg: key.alg }, 'signing key rotated');
    for (const listener of listeners) listener(published);
    return key;
  }

  const timers: NodeJS.Timeout[] = [];
  const sweep = setInterval(prune, Math.min(60_000, Math.max(1000, retireAfterMs / 4)));
  sweep.unref();
  timers.push(sweep);
  if (options.rotateEverySeconds !== undefined) {
    const rotation = setInterval(() => {
      rotate().catch((error: unknown) => options.logger.error({ err: error }, 'signing key rotation failed; the current key keeps signing'));
    }, options.rotateEverySeconds * 1000);
    rotation.unref();
    timers.push(rotation);
  }

  return {
    active: () => (held[0] as HeldKey).key,
    jwks() {
      prune();
      return published;
    },
    rotate,
    onRotate(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      for (const timer of timers) clearInterval(timer);
      listeners.clear();
    },
  };
}

async function generate(alg: SigningAlg): Promise<SigningKey> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}), ...(alg === 'RS256' ? { modulusLength: 2048 } : {}) });
  return await describe(toKeyObject(await exportPKCS8(privateKey)));
}

function toKeyObject(pem: string): KeyObject {
  return createPrivateKey({ key: pem, format: 'pem' });
}

async function describe(privateKey: KeyObject): Promise<SigningKey> {
  const alg = algOf(privateKey);
  const jwk = await exportJWK(createPublicKey(privateKey));
  const kid = await calculateJwkThumbprint(jwk);
  return Object.freeze({ kid, alg, privateKey, publicJwk: Object.freeze({ ...jwk, kid, alg, use: 'sig' }) });
}

function algOf(key: KeyObject): SigningAlg {
  const type = key.asymmetricKeyType;
  if (type === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  if (type === 'ed25519') return 'EdDSA';
  if (type === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048) return 'RS256';
  throw new Error(`expected a P-256, Ed25519 or RSA (2048+ bit) private key, got ${type ?? 'an unknown key type'}`);
}

async function persist(dir: string, key: SigningKey, at: number): Promise<string> {
  const file = join(dir, `baton-sts-${at}-${key.kid}.key.pem`);
  writeFileSync(file, key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600, flag: 'wx' });
  return file;
}

interface LoadedKey {
  readonly key: SigningKey;
  readonly file: string;
  readonly mtimeMs: number;
}

async function loadDir(dir: string): Promise<LoadedKey[]> {
  const out: LoadedKey[] = [];
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.pem')) continue;
    const file = join(dir, name);
    const text = readFileSync(file, 'utf8');
    if (!text.includes('PRIVATE KEY')) continue;
    let privateKey: KeyObject;
    try {
      privateKey = toKeyObject(text);
    } catch (error) {
      throw new Error(`expected ${file} to hold a PEM private key: ${(error as Error).message}`, { cause: error });
    }
    out.push({ key: await describe(privateKey), file, mtimeMs: statSync(file).mtimeMs });
  }
  return out;
}
