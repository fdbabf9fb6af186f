/**
 * Workload identity errors: the certificate files a sidecar, the STS or the
 * policy server prove who they are with, and the peers they accept. One
 * code per cause; messages name files and SPIFFE IDs, never key material.
 */
import type { SpiffeId } from './spiffe-id.ts';

export type IdentityErrorCode =
  /** A file of the identity (certificate, key, bundle) cannot be read. */
  | 'BATON_IDENTITY_MISSING'
  /** The files can be read but do not form a usable X509-SVID. */
  | 'BATON_IDENTITY_INVALID'
  /** The certificate does not chain to the trust bundle. */
  | 'BATON_IDENTITY_UNTRUSTED'
  /** The certificate is expired or not yet valid. */
  | 'BATON_IDENTITY_EXPIRED'
  /** A string is not a SPIFFE ID. */
  | 'BATON_IDENTITY_SPIFFE_ID_INVALID'
  /** The SPIFFE ID maps to no service, or to another one than expected. */
  | 'BATON_IDENTITY_UNMAPPED';

export class IdentityError extends Error {
  readonly code: IdentityErrorCode;
  constructor(code: IdentityErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'IdentityError';
    this.code = code;
  }
}

/** A TLS peer's certificate names another SPIFFE ID than the one expected; the connection is dropped before anything is sent. */
export class PeerIdentityError extends Error {
  readonly code = 'BATON_IDENTITY_PEER_MISMATCH';
  readonly expected: SpiffeId;
  readonly seen: string | undefined;
  constructor(expected: SpiffeId, seen: string | undefined) {
    super(`expected the peer certificate to name ${expected}, got ${seen ?? 'no SPIFFE ID'}`);
    this.name = 'PeerIdentityError';
    this.expected = expected;
    this.seen = seen;
  }
}
