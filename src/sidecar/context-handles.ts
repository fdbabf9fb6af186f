/**
 * The opaque `baton-context` handle the app holds instead of a bearer token
 * (DESIGN "By default the app never holds a bearer token"). The app sends it
 * back on outbound calls and the sidecar opens it to get the subject token
 * and the request it came with.
 *
 * A handle is sealed, not stored (issue #23): the subject token, the
 * request id and the token's `exp`, encrypted and authenticated with
 * AES-256-GCM under a key made when the process starts and never written
 * anywhere. So there is no store for a flood of tokens to fill (with one,
 * 160 accounts × 64 tokens held every slot and each new user got 503 until
 * their tokens expired), and still:
 *
 * - a handle altered in any bit, or sealed by another process (another pod,
 *   or this sidecar before a restart), does not open;
 * - it stops opening at the token's `exp`, not at the verifier's clock skew
 *   past it;
 * - the request id it carries cannot be changed without the key, so the
 *   outbound calls the app makes with it are logged under the inbound
 *   request's id, and an app cannot pass its calls off as another request's;
 * - it means nothing outside this sidecar's memory: a leaked handle is
 *   useless elsewhere and dies with the process.
 *
 * What it costs: a handle is about as long as its token (JWS segments are
 * sealed as the bytes they encode, so the base64url of the sealed box is
 * the token's length plus at most 70 characters), and one AES-GCM pass per
 * inbound request and per outbound call; the HMAC that bound the request
 * id before is gone. Opening gives the token only: the caller gets its
 * verified claims from the verified-token cache (verifying again on a miss),
 * so a handle never outlives its token's verification.
 *
 * Nonces are a per-process counter, never random: under one key, a GCM nonce
 * must never repeat (NIST SP 800-38D §8.2.1), and a counter cannot, where 96
 * random bits would near a birthday bound after 2³² handles.
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject, randomBytes } from 'node:crypto';
import { isCanonicalBase64url } from '../token/preparse.ts';
import type { VerifiedToken } from '../token/verified-token.ts';

/** What a `baton-context` handle opens to: the subject token and the inbound request it was issued for. */
export interface OpenedContextHandle {
  readonly subjectToken: string;
  /** The `request` id of the inbound request (below). */
  readonly requestId: string;
}

/** Sealed handles (./context-handles.ts): nothing is stored, so nothing can fill up. */
export interface ContextHandles {
  /** A handle for a verified token, bound to the inbound request's id; it opens until the token's exp. */
  readonly issue: (subjectToken: string, verified: Pick<VerifiedToken, 'expiresAt'>, requestId: string) => string;
  /** Undefined when altered, sealed by another process, or past the token's exp. */
  readonly resolve: (handle: string) => OpenedContextHandle | undefined;
}

export const CONTEXT_HANDLE_PREFIX = 'bctx_';

export interface ContextHandleOptions {
  /** The longest token a handle may carry (`limits.maxTokenBytes`): a longer handle is refused before it is decoded. */
  readonly maxTokenBytes: number;
  /** 32 bytes; a fresh random key when absent, which is what the sidecar uses. */
  readonly key?: Buffer;
  /** Milliseconds. */
  readonly now?: () => number;
}

const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const REQUEST_ID_BYTES = 12;
/** The form byte, the exp (uint32 seconds) and the request id come before the token. */
const HEAD_BYTES = 1 + 4 + REQUEST_ID_BYTES;
const RAW = 0;
const JWS = 1;
/** A request id: 96 random bits as 16 base64url characters (below). */
export const REQUEST_ID = /^[A-Za-z0-9_-]{16}$/;
// Associated data: a sealed box made for anything else under this key (there is nothing else today) never opens as a handle.
const AAD = Buffer.from('baton-context/1');

export function createContextHandles(options: ContextHandleOptions): ContextHandles {
  const key: KeyObject = createSecretKey(options.key ?? randomBytes(32));
  if (key.symmetricKeySize !== 32)
    throw new TypeError(`expected a 32-byte key for AES-256-GCM, got ${key.symmetricKeySize} bytes`);
  const now = options.now ?? Date.now;
  // A JWS packs to at most its own length; a raw token is sealed as is: either way the box is at most this long.
  const maxSealedBytes = NONCE_BYTES + HEAD_BYTES + 4 + options.maxTokenBytes + TAG_BYTES;
  const maxHandleLength = CONTEXT_HANDLE_PREFIX.length + Math.ceil((maxSealedBytes * 4) / 3);
  const nonces = createNonceCounter();

  return {
    issue(subjectToken, verified, requestId) {
      if (!REQUEST_ID.test(requestId)) throw new TypeError('expected a 16-character base64url request id');
      const body = packToken(subjectToken);
      const plain = Buffer.allocUnsafe(HEAD_BYTES + body.length);
      plain[0] = body.form;
      // A NumericDate may carry a fraction; rounding down ends the handle no later than the token.
      plain.writeUInt32BE(Math.min(0xffff_ffff, Math.max(0, Math.floor(verified.expiresAt))), 1);
      plain.write(requestId, 5, REQUEST_ID_BYTES, 'base64url');
      body.write(plain, HEAD_BYTES);
      const nonce = nonces.next();
      const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
      cipher.setAAD(AAD);
      const sealed = Buffer.concat([nonce, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
      return CONTEXT_HANDLE_PREFIX + sealed.toString('base64url');
    },
    resolve(handle) {
      // Size and spelling first: a garbage header costs a comparison, not a decryption. One spelling per box.
      if (handle.length > maxHandleLength || !handle.startsWith(CONTEXT_HANDLE_PREFIX)) return undefined;
      const text = handle.slice(CONTEXT_HANDLE_PREFIX.length);
      if (!isCanonicalBase64url(text)) return undefined;
      const sealed = Buffer.from(text, 'base64url');
      if (sealed.length < NONCE_BYTES + HEAD_BYTES + 1 + TAG_BYTES) return undefined;
      let plain: Buffer;
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, NONCE_BYTES), {
          authTagLength: TAG_BYTES,
        });
        decipher.setAAD(AAD);
        decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
        plain = decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES));
        // GCM's final() yields no bytes; it is where the tag is checked, and throws on a mismatch.
        decipher.final();
      } catch {
        // Altered, truncated, or sealed under another key: all the same to the caller.
        return undefined;
      }
      // The token's exp, exactly: a token inside the verifier's clock skew past it has no live handle.
      if (plain.readUInt32BE(1) * 1000 <= now()) return undefined;
      const requestId = plain.toString('base64url', 5, HEAD_BYTES);
      const subjectToken = unpackToken(plain[0] as number, plain.subarray(HEAD_BYTES));
      return subjectToken === undefined ? undefined : ({ subjectToken, requestId } satisfies OpenedContextHandle);
    },
  };
}

interface PackedToken {
  readonly form: number;
  readonly length: number;
  write(target: Buffer, offset: number): void;
}

/**
 * A compact JWS is sealed as the bytes its three base64url segments encode,
 * a quarter shorter than its text; anything else (an opaque token, a JWS
 * spelled non-canonically, which no verifier accepted anyway) as its text.
 * Either way opening gives back exactly the string that was sealed.
 */
function packToken(token: string): PackedToken {
  const first = token.indexOf('.');
  const second = first === -1 ? -1 : token.indexOf('.', first + 1);
  if (second !== -1 && token.indexOf('.', second + 1) === -1) {
    const header = token.slice(0, first);
    const claims = token.slice(first + 1, second);
    const signature = token.slice(second + 1);
    if (isCanonicalBase64url(header) && isCanonicalBase64url(claims) && isCanonicalBase64url(signature)) {
      const headerBytes = decodedLength(header.length);
      const claimsBytes = decodedLength(claims.length);
      if (headerBytes <= 0xffff && claimsBytes <= 0xffff) {
        return {
          form: JWS,
          length: 4 + headerBytes + claimsBytes + decodedLength(signature.length),
          write(target, offset) {
            target.writeUInt16BE(headerBytes, offset);
            target.writeUInt16BE(claimsBytes, offset + 2);
            let at = offset + 4;
            at += target.write(header, at, 'base64url');
            at += target.write(claims, at, 'base64url');
            target.write(signature, at, 'base64url');
          },
        };
      }
    }
  }
  return {
    form: RAW,
    length: Buffer.byteLength(token, 'utf8'),
    write: (target, offset) => void target.write(token, offset, 'utf8'),
  };
}

function unpackToken(form: number, body: Buffer): string | undefined {
  if (form === RAW) return body.toString('utf8');
  if (form !== JWS || body.length < 4) return undefined;
  const headerEnd = 4 + body.readUInt16BE(0);
  const claimsEnd = headerEnd + body.readUInt16BE(2);
  if (claimsEnd > body.length) return undefined;
  return `${body.toString('base64url', 4, headerEnd)}.${body.toString('base64url', headerEnd, claimsEnd)}.${body.toString('base64url', claimsEnd)}`;
}

/** Bytes a canonical unpadded base64url string of this length encodes. */
function decodedLength(characters: number): number {
  return Math.floor((characters * 3) / 4);
}

/**
 * 96-bit GCM nonces: four random bytes, then a 64-bit count of handles
 * sealed by this instance. The sidecar's key is its own, so the count alone
 * would do; the random prefix keeps two instances given one key (tests)
 * from starting on the same nonces.
 */
function createNonceCounter(): { next(): Buffer } {
  const prefix = randomBytes(4).readUInt32BE(0);
  let count = 0;
  return {
    next() {
      const nonce = Buffer.allocUnsafe(NONCE_BYTES);
      nonce.writeUInt32BE(prefix, 0);
      // 2^53 handles would take millennia at any request rate; past it the nonce could repeat, so refuse.
      if (!Number.isSafeInteger(++count))
        throw new RangeError('expected fewer than 2^53 context handles under one key');
      nonce.writeUInt32BE(Math.floor(count / 0x1_0000_0000), 4);
      nonce.writeUInt32BE(count % 0x1_0000_0000, 8);
      return nonce;
    },
  };
}

// --- the request id a handle carries ---

/**
 * The per-request correlation id, `request` in audit lines and the
 * `baton-request` header. `txn` names a user's whole session of calls (it is
 * derived from the user token, so every request made with one token shares
 * it); `request` names one request and every call it causes, hop by hop,
 * whether or not the apps propagate trace context:
 *
 * - the entry hop mints it;
 * - the `baton-context` handle the app gets carries it, sealed with the
 *   token under a key only this sidecar holds (above), so
 *   the outbound calls the app makes with that handle are logged under the
 *   same id and an app cannot pass its calls off as another request's;
 * - the outbound sidecar sends it to the next hop as `baton-request`, which
 *   that hop takes only from a caller holding a mesh token (an external
 *   caller's value is ignored and a fresh id minted).
 *
 * It is correlation for audit, not a security claim: a mesh service can
 * label its own calls with any id it was given.
 */
export const REQUEST_HEADER = 'baton-request';

export interface RequestIds {
  /** A fresh id: 96 random bits, 16 base64url characters. */
  mint(): string;
  /** A caller's `baton-request` value when it is well-formed, else undefined. */
  accept(value: string | string[] | undefined): string | undefined;
}

export function createRequestIds(): RequestIds {
  const pool = createEntropyPool();
  return {
    mint: () => pool.take(12).toString('base64url'),
    accept: (value) => (typeof value === 'string' && REQUEST_ID.test(value) ? value : undefined),
  };
}

/**
 * Random bytes drawn from a buffer refilled 4 KiB at a time, as crypto.randomUUID
 * does: one getrandom call per 341 request ids instead of one per id.
 */
function createEntropyPool(): { take(n: number): Buffer } {
  let pool = randomBytes(4096);
  let offset = 0;
  return {
    take(n) {
      if (offset + n > pool.length) {
        pool = randomBytes(4096);
        offset = 0;
      }
      // A copy: the pool is overwritten on refill, an id handed out must not change.
      const out = Buffer.from(pool.subarray(offset, offset + n));
      offset += n;
      return out;
    },
  };
}
