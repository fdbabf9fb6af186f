/**
 * The STS's signing keys as files and as key objects: a key generated
 * (ES256, EdDSA or RS256), written into keys.dir as a PKCS#8 PEM file whose
 * modification time is when it was published, read back from keys.dir, and
 * removed once retired (only files baton generated; a mounted key is the
 * operator's). Refuses a file in keys.dir that cannot sign rather than skip
 * it (SigningKeyUnusableError). The rotation schedule is the key store's
 * (key-store.ts); this module knows no time but a file's.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readdirSync, readFileSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, exportPKCS8, generateKeyPair, type JWK } from 'jose';
import { ConfigError } from '../config/config-error.ts';
import type { SigningAlg } from './config.ts';

export interface SigningKey {
  readonly kid: string;
  readonly alg: SigningAlg;
  readonly privateKey: KeyObject;
  readonly publicJwk: JWK;
}

/**
 * A file in keys.dir that cannot sign: a public key or certificate mounted
 * where the private key belongs, a key of an unsupported type, or no PEM at
 * all. Skipping it would let the STS generate a fresh key that no one else
 * has, so that every verifier pinned to the mounted key fails; refuse to start
 * (BATON_CONFIG_INVALID, reason `signing-key`).
 */
export class SigningKeyUnusableError extends ConfigError {
  constructor(file: string, seen: string) {
    super(
      file,
      'keys.dir',
      'a PEM private key (PKCS#8 or SEC1/PKCS#1) for ES256 (P-256), EdDSA (Ed25519) or RS256 (RSA 2048+)',
      seen,
      'signing-key',
    );
    this.name = 'SigningKeyUnusableError';
  }
}

const GENERATED_FILE = /^baton-sts-\d+-[A-Za-z0-9_-]+\.key\.pem$/;

export interface LoadedKey {
  readonly key: SigningKey;
  readonly file: string;
  readonly mtimeMs: number;
}

/** Deletes a retired key's file when baton generated it; a file the operator mounted stays. */
export function removeGeneratedKeyFile(file: string): void {
  if (!GENERATED_FILE.test(basename(file))) return;
  try {
    unlinkSync(file);
  } catch {
    // already gone: nothing to retire
  }
}

export async function generateSigningKey(alg: SigningAlg): Promise<SigningKey> {
  const { privateKey } = await generateKeyPair(alg, {
    extractable: true,
    ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}),
    ...(alg === 'RS256' ? { modulusLength: 2048 } : {}),
  });
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

export async function writeKeyFile(dir: string, key: SigningKey, at: number): Promise<string> {
  const file = join(dir, `baton-sts-${at}-${key.kid}.key.pem`);
  writeFileSync(file, key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600, flag: 'wx' });
  // The modification time is when it was published: a restart reads its activation from it.
  utimesSync(file, at / 1000, at / 1000);
  return file;
}

export async function loadKeyFiles(dir: string): Promise<LoadedKey[]> {
  const out: LoadedKey[] = [];
  for (const name of readdirSync(dir).sort()) {
    // A mounted Kubernetes Secret keeps its real files under ..data and other dot-entries: the plain names are the keys.
    if (name.startsWith('.')) continue;
    const file = join(dir, name);
    if (!statSync(file).isFile()) continue;
    const text = readFileSync(file, 'utf8');
    const label = pemLabel(text);
    if (label === undefined || !label.endsWith('PRIVATE KEY'))
      throw new SigningKeyUnusableError(file, label === undefined ? 'a file with no PEM block' : `a PEM ${label}`);
    let privateKey: KeyObject;
    try {
      privateKey = toKeyObject(text);
    } catch (error) {
      throw new SigningKeyUnusableError(
        file,
        `a PEM ${label} that does not parse (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`,
      );
    }
    let key: SigningKey;
    try {
      key = await describe(privateKey);
    } catch (error) {
      throw new SigningKeyUnusableError(file, (error as Error).message.replace(/^expected .*, got /, ''));
    }
    out.push({ key, file, mtimeMs: statSync(file).mtimeMs });
  }
  return out;
}

/** The label of the first PEM block (`PRIVATE KEY`, `PUBLIC KEY`, `CERTIFICATE`), never its contents. */
function pemLabel(text: string): string | undefined {
  return /-----BEGIN ([A-Z0-9 ]{1,40})-----/.exec(text)?.[1];
}
