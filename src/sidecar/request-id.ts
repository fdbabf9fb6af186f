/**
 * The per-request correlation id, `request` in audit lines and the
 * `baton-request` header. `txn` names a user's whole session of calls (it is
 * derived from the user token, so every request made with one token shares
 * it); `request` names one request and every call it causes, hop by hop,
 * whether or not the apps propagate trace context:
 *
 * - the entry hop mints it;
 * - the `baton-context` handle the app gets carries it, sealed with the
 *   token under a key only this sidecar holds (./context-handles.ts), so
 *   the outbound calls the app makes with that handle are logged under the
 *   same id and an app cannot pass its calls off as another request's;
 * - the outbound sidecar sends it to the next hop as `baton-request`, which
 *   that hop takes only from a caller holding a mesh token (an external
 *   caller's value is ignored and a fresh id minted).
 *
 * It is correlation for audit, not a security claim: a mesh service can
 * label its own calls with any id it was given.
 */
import { randomBytes } from 'node:crypto';

export const REQUEST_HEADER = 'baton-request';

const REQUEST_ID = /^[A-Za-z0-9_-]{16}$/;

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
