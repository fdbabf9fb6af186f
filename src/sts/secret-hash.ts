/**
 * Client secrets at rest: `scrypt$<log2 N>$<r>$<p>$<salt>$<hash>` (salt and
 * hash base64url), what `baton sts hash-secret` prints. scrypt is slow on
 * purpose; a verified secret is remembered as an HMAC under a per-process
 * key so that only the first request of a client pays for it.
 */
import { createHmac, randomBytes, scrypt as scryptCallback, type ScryptOptions, timingSafeEqual } from 'node:crypto';

const DEFAULT_LOG2_N = 15;
const DEFAULT_R = 8;
const DEFAULT_P = 1;
const KEY_LENGTH = 32;

function scrypt(secret: string, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scryptCallback(secret, salt, keylen, options, (error, key) => (error ? reject(error) : resolve(key))),
  );
}

function params(log2N: number, r: number, p: number): ScryptOptions {
  const N = 2 ** log2N;
  return { N, r, p, maxmem: 256 * N * r + 1024 * 1024 };
}

export async function hashSecret(secret: string, log2N = DEFAULT_LOG2_N): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scrypt(secret, salt, KEY_LENGTH, params(log2N, DEFAULT_R, DEFAULT_P));
  return `scrypt$${log2N}$${DEFAULT_R}$${DEFAULT_P}$${salt.toString('base64url')}$${hash.toString('base64url')}`;
}

export interface SecretVerifier {
  verify(presented: string): Promise<boolean>;
  /** True when `presented` is known good without the costly check (an HMAC compare); false means "not known", not "wrong". */
  known(presented: string): boolean;
  /** Whether `verify` costs a key derivation (scrypt), so it must be bounded and throttled (./auth-throttle.ts). */
  readonly costly: boolean;
}

/** A verifier for a plain configured secret, compared in constant time. */
export function plainSecretVerifier(secret: string): SecretVerifier {
  const mac = createMacer();
  const expected = mac(secret);
  const matches = (presented: string): boolean => timingSafeEqual(mac(presented), expected);
  return { verify: async (presented) => matches(presented), known: matches, costly: false };
}

/** A verifier for an scrypt hash; throws at construction when the format is wrong. */
export function hashedSecretVerifier(encoded: string): SecretVerifier {
  const parts = encoded.split('$');
  const [scheme, log2N, r, p, salt, hash] = parts;
  if (
    parts.length !== 6 ||
    scheme !== 'scrypt' ||
    !/^\d+$/.test(log2N ?? '') ||
    !/^\d+$/.test(r ?? '') ||
    !/^\d+$/.test(p ?? '')
  ) {
    throw new Error('expected secretHash as scrypt$<log2 N>$<r>$<p>$<salt>$<hash>');
  }
  const options = params(Number(log2N), Number(r), Number(p));
  if (Number(log2N) < 10 || Number(log2N) > 20) throw new Error('expected secretHash log2 N between 10 and 20');
  const saltBytes = Buffer.from(salt ?? '', 'base64url');
  const expected = Buffer.from(hash ?? '', 'base64url');
  if (saltBytes.length < 8 || expected.length < 16)
    throw new Error('expected secretHash with a salt of 8+ bytes and a hash of 16+ bytes');
  const mac = createMacer();
  let remembered: Buffer | undefined;
  return {
    costly: true,
    known: (presented) => remembered !== undefined && timingSafeEqual(mac(presented), remembered),
    async verify(presented) {
      const presentedMac = mac(presented);
      if (remembered !== undefined && timingSafeEqual(presentedMac, remembered)) return true;
      const derived = await scrypt(presented, saltBytes, expected.length, options);
      const ok = timingSafeEqual(derived, expected);
      if (ok) remembered = presentedMac;
      return ok;
    },
  };
}

// Equal-length digests make timingSafeEqual usable for secrets of any length.
function createMacer(): (value: string) => Buffer {
  const key = randomBytes(32);
  return (value) => createHmac('sha256', key).update(value, 'utf8').digest();
}
