/**
 * Sealing of exchanged tokens before they reach the shared Redis tier:
 * AES-256-GCM (NIST SP 800-38D) under a per-service key that only the
 * sidecar container holds. Whoever reads Redis sees sealed blobs, never a
 * token; whoever writes Redis cannot forge one.
 *
 * The associated data names the service and the Redis key the blob was
 * written under, so a blob copied to another key, or into another
 * service's prefix, fails to open even where two services were given the
 * same key by mistake. Each blob names its key by id, so a rotation
 * (a current and a previous key) opens old blobs without trial decryption.
 */
import { createCipheriv, createDecipheriv, createSecretKey, hash, type KeyObject, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../../config/config-error.ts';

const FORMAT = 'v1';
const IV_BYTES = 12; // SP 800-38D §8.2: 96-bit IVs, random, far below 2^32 seals per key
const TAG_BYTES = 16;
export const SEAL_KEY_BYTES = 32;

export interface SealKey {
  /** A short public id: a hash of the key, never the key. */
  readonly kid: string;
  readonly key: KeyObject;
}

export interface SealKeys {
  /** Seals every new entry. */
  readonly current: SealKey;
  /** Still opens entries sealed before a rotation. */
  readonly previous?: SealKey;
}

export function sealKeyFromBytes(bytes: Uint8Array): SealKey {
  if (bytes.length !== SEAL_KEY_BYTES)
    throw new TypeError(`a seal key is ${SEAL_KEY_BYTES} bytes, got ${bytes.length}`);
  return {
    kid: hash('sha256', Buffer.concat([Buffer.from('baton-seal-kid\0'), bytes]), 'base64url').slice(0, 8),
    key: createSecretKey(bytes),
  };
}

/** Reads the key files named in config; any problem is a config error, so the sidecar does not start. */
export function loadSealKeys(currentFile: string, previousFile?: string): SealKeys {
  const current = sealKeyFromBytes(readKeyFile(currentFile, 'redis.sealKeyFile'));
  if (previousFile === undefined) return { current };
  return { current, previous: sealKeyFromBytes(readKeyFile(previousFile, 'redis.previousSealKeyFile')) };
}

function readKeyFile(file: string, key: string): Buffer {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw new ConfigError(
      file,
      key,
      'a readable file holding a 32-byte key in base64 (openssl rand -base64 32)',
      (error as NodeJS.ErrnoException).code ?? 'an unreadable file',
    );
  }
  const bytes = /^[A-Za-z0-9+/_-]+={0,2}$/.test(text)
    ? Buffer.from(text, /[+/]/.test(text) ? 'base64' : 'base64url')
    : Buffer.alloc(0);
  if (bytes.length !== SEAL_KEY_BYTES) {
    throw new ConfigError(
      file,
      key,
      'a 32-byte key in base64 (openssl rand -base64 32)',
      `${bytes.length === 0 ? 'no base64 text' : `${bytes.length} bytes`} (not shown: secret)`,
    );
  }
  return bytes;
}

/** `v1.<kid>.<iv>.<ciphertext>.<tag>`, base64url. */
export function seal(keys: SealKeys, plaintext: string, associatedData: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', keys.current.key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(associatedData, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return `${FORMAT}.${keys.current.kid}.${iv.toString('base64url')}.${body.toString('base64url')}.${cipher.getAuthTag().toString('base64url')}`;
}

/** The plaintext, or undefined for anything that does not open: a foreign key, moved blob, tampering or garbage. */
export function open(keys: SealKeys, sealed: string, associatedData: string): string | undefined {
  const parts = sealed.split('.');
  if (parts.length !== 5 || parts[0] !== FORMAT) return undefined;
  const [, kid, iv, body, tag] = parts as [string, string, string, string, string];
  const key = kid === keys.current.kid ? keys.current.key : kid === keys.previous?.kid ? keys.previous.key : undefined;
  if (key === undefined) return undefined;
  const ivBytes = Buffer.from(iv, 'base64url');
  const tagBytes = Buffer.from(tag, 'base64url');
  if (ivBytes.length !== IV_BYTES || tagBytes.length !== TAG_BYTES) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, ivBytes, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(associatedData, 'utf8'));
    decipher.setAuthTag(tagBytes);
    return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}
