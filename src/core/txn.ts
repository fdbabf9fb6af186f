/**
 * The `txn` claim: one id for the whole chain, minted at the entry hop.
 *
 * At the entry hop two parties need it at once: the entry service's sidecar
 * (for the app's `baton-txn` header and its audit line) and the STS (which
 * puts it in the first delegated token). Both derive it from the external
 * subject token itself, so they agree without any extra protocol parameter,
 * and the id reveals nothing of the token.
 */
import { hash, randomBytes } from 'node:crypto';

export function entryTxn(issuer: string, jti: unknown, token: string): string {
  const uniquePart =
    typeof jti === 'string' && jti !== '' ? `jti:${jti}` : `sha256:${hash('sha256', token, 'base64url')}`;
  return hash('sha256', `baton-txn\0${issuer}\0${uniquePart}`, 'base64url').slice(0, 22);
}

/** A fresh `txn` for chains that start without a user token (client credentials): 128 bits. */
export function randomTxn(): string {
  return randomBytes(16).toString('base64url');
}
