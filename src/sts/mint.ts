/**
 * Signing the tokens the STS issues: RFC 9068 JWT access tokens with
 * `typ: at+jwt` (§2.1), signed by the active key and naming it by `kid`.
 */
import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import type { BatonAccessTokenClaims } from '../core/claims.ts';
import { ACCESS_TOKEN_JWT_TYP } from '../core/token-types.ts';
import type { KeyStore } from './key-store.ts';

export type Minter = (claims: BatonAccessTokenClaims) => Promise<string>;

export function createMinter(keys: KeyStore): Minter {
  return async (claims) => {
    const key = keys.active();
    return await new SignJWT({ ...claims })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: ACCESS_TOKEN_JWT_TYP })
      .sign(key.privateKey);
  };
}

/** Random identifiers for `jti` and `txn`: 128 bits, base64url. */
export function randomId(): string {
  return randomBytes(16).toString('base64url');
}
