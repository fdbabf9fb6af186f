/**
 * Workload identity errors: the certificate files a sidecar, the STS or the
 * policy server prove who they are with, and the peers they accept. One
 * code per cause; messages name files and SPIFFE IDs, never key material.
 * None is an HTTP answer itself: the sidecar and the STS answer for them.
 */
import { BatonError } from '../core/errors.ts';

export type IdentityErrorCode =
  /** A file of the identity (certificate, key, bundle) cannot be read. */
  | 'BATON_IDENTITY_MISSING'
  /** The files can be read but do not form a usable X509-SVID. */
  | 'BATON_IDENTITY_INVALID'
  /** The certificate does not chain to the trust bundle. */
  | 'BATON_IDENTITY_UNTRUSTED'
  /** The certificate has expired. */
  | 'BATON_IDENTITY_EXPIRED'
  /** The certificate is not valid yet: a clock behind its issuer's, or one issued for later. */
  | 'BATON_IDENTITY_NOT_YET_VALID'
  /** A string is not a SPIFFE ID. */
  | 'BATON_IDENTITY_SPIFFE_ID_INVALID'
  /** The SPIFFE ID maps to no service, or to another one than expected. */
  | 'BATON_IDENTITY_UNMAPPED'
  /** A TLS client presented a CA (signing) certificate as its own: never a workload (X509-SVID §4.1); the sidecar answers it with this code, the STS with invalid_client. */
  | 'BATON_PEER_NOT_WORKLOAD'
  /** Rotated files name another SPIFFE ID than the identity in use: a rotation must keep the ID. */
  | 'BATON_IDENTITY_ID_CHANGED';

/** A certificate's validity window, epoch milliseconds, for errors about it. */
export interface Validity {
  readonly spiffeId: string;
  readonly notBefore: number;
  readonly notAfter: number;
}

export class IdentityError extends BatonError {
  declare readonly code: IdentityErrorCode;
  /** BATON_IDENTITY_MISSING: the file that could not be read and the system's reason (ENOENT, EACCES, …). */
  readonly file: string | undefined;
  readonly errno: string | undefined;
  /** BATON_IDENTITY_EXPIRED and _NOT_YET_VALID: the certificate's window. */
  readonly validity: Validity | undefined;
  constructor(
    code: IdentityErrorCode,
    message: string,
    options?: { cause?: unknown; file?: string; errno?: string; validity?: Validity },
  ) {
    super(code, message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'IdentityError';
    this.file = options?.file;
    this.errno = options?.errno;
    this.validity = options?.validity;
  }
}

/**
 * A TLS server's certificate is not the workload certificate of the SPIFFE
 * ID expected: it names another ID, or it is a CA certificate (whatever ID
 * it carries); the connection is dropped before anything is sent. Its code
 * is the one the sidecar answers an upstream's with,
 * BATON_UPSTREAM_IDENTITY_MISMATCH, whichever server it was (an upstream,
 * the STS, the policy server).
 */
export class PeerIdentityError extends BatonError {
  /** The SPIFFE ID the caller meant to reach. */
  readonly expected: string;
  readonly seen: string | undefined;
  /** `reason`: `ca-certificate` (a signing certificate, whatever it names) or `other-id`. */
  constructor(expected: string, seen: string | undefined, signing = false) {
    super(
      'BATON_UPSTREAM_IDENTITY_MISMATCH',
      signing
        ? `expected the peer's workload (leaf) certificate naming ${expected}, got a CA certificate naming ${seen ?? 'no SPIFFE ID'} (X509-SVID §4.1)`
        : `expected the peer certificate to name ${expected}, got ${seen ?? 'no SPIFFE ID'}`,
      { reason: signing ? 'ca-certificate' : 'other-id' },
    );
    this.name = 'PeerIdentityError';
    this.expected = expected;
    this.seen = seen;
  }
}
