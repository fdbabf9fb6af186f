/**
 * TLS settings built from a workload identity, and the SPIFFE checks that
 * replace host-name verification on mesh hops (X509-SVID §5): a server is
 * trusted as the one service the caller meant to reach, a client as the
 * service its certificate's SPIFFE ID maps to. Both sides trust only the
 * trust bundle, never the system store, and neither takes a CA certificate
 * for a workload, whatever SPIFFE ID it carries (X509-SVID §4.1).
 */
import { type PeerCertificate, type SecureContextOptions, Server as TlsServer, type TLSSocket } from 'node:tls';
import type { X509Certificate } from 'node:crypto';
import type { SpiffeId } from './spiffe-id.ts';
import { spiffeIdFromSubjectAltName } from './spiffe-id.ts';
import { IdentityError, PeerIdentityError } from './errors.ts';
import { certificateThumbprint, type Svid } from './svid.ts';

/**
 * The URL a fastify app listens on, with the scheme its server speaks.
 * fastify writes `http://` for a server it did not create itself (a
 * serverFactory), TLS or not, and the log line would send an operator's curl
 * to the wrong scheme.
 */
export function servedUrl(address: string, server: unknown): string {
  return server instanceof TlsServer ? address.replace(/^http:/, 'https:') : address;
}

/** How an inbound port treats client certificates. */
export type ClientCertificateMode = 'required' | 'optional';

// TLS 1.3 only on mesh hops: both ends are baton or a SPIFFE-aware peer, and 1.3 drops renegotiation and static-RSA suites.
const MIN_VERSION = 'TLSv1.3';

export function secureContextOptions(svid: Svid): SecureContextOptions {
  return { cert: svid.pem.cert, key: svid.pem.key, ca: svid.pem.bundle, minVersion: MIN_VERSION };
}

/** For `tls.createServer` / `https.createServer` and `server.setSecureContext`. */
export function serverTlsOptions(
  svid: Svid,
  clientCertificate: ClientCertificateMode,
): SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean } {
  // 'optional' still verifies a certificate that is presented: rejectUnauthorized
  // refuses a bad one; only an absent one is let through, and then no bound token is accepted.
  return { ...secureContextOptions(svid), requestCert: true, rejectUnauthorized: clientCertificate === 'required' };
}

/**
 * Client options that accept the server only if its certificate chains to
 * the bundle *and* names `expected`. A certificate for another service is
 * refused in the handshake, before a request (and its token) is written.
 */
export function clientTlsOptions(
  svid: Svid | undefined,
  expected: SpiffeId,
  bundlePem: string,
): {
  ca: string;
  cert?: string;
  key?: string;
  minVersion: 'TLSv1.3';
  rejectUnauthorized: true;
  checkServerIdentity: (host: string, cert: PeerCertificate) => Error | undefined;
} {
  return {
    ca: bundlePem,
    ...(svid === undefined ? {} : { cert: svid.pem.cert, key: svid.pem.key }),
    minVersion: MIN_VERSION,
    rejectUnauthorized: true,
    checkServerIdentity: spiffeServerCheck(expected),
  };
}

export function spiffeServerCheck(expected: SpiffeId): (host: string, cert: PeerCertificate) => Error | undefined {
  return (_host, cert) => {
    const seen = spiffeIdFromSubjectAltName(cert.subjectaltname);
    // X509-SVID §4.1: a leaf SVID has CA false. A signing certificate carrying the right ID is still no workload.
    if (cert.ca) return new PeerIdentityError(expected, seen, true);
    return seen === expected ? undefined : new PeerIdentityError(expected, seen);
  };
}

export interface PeerIdentity {
  readonly spiffeId: SpiffeId;
  /** `x5t#S256` of the certificate the peer presented (RFC 8705 §3.1). */
  readonly thumbprint: string;
}

/**
 * The verified peer of a TLS socket: undefined on a plaintext socket, when
 * no certificate was presented, or when it did not verify against the
 * bundle. Cached on the socket: keep-alive requests share the handshake.
 *
 * Throws IdentityError BATON_PEER_NOT_WORKLOAD when the peer's
 * certificate is a CA certificate: OpenSSL accepts one as a TLS client or
 * server certificate, but X509-SVID §4.1 says a leaf SVID has CA false, and
 * a signing certificate that carries a workload's SPIFFE ID must never be
 * taken for that workload. Every caller turns the throw into its refusal.
 */
export function peerIdentity(socket: TLSSocket): PeerIdentity | undefined {
  let found = PEERS.get(socket);
  if (found === undefined && !PEERS.has(socket)) {
    found = readPeer(socket);
    PEERS.set(socket, found);
  }
  if (found instanceof IdentityError) throw found;
  return found;
}

function readPeer(socket: TLSSocket): PeerIdentity | IdentityError | undefined {
  if (!socket.authorized) return undefined;
  const cert: X509Certificate | undefined = socket.getPeerX509Certificate();
  if (cert === undefined) return undefined;
  const spiffeId = spiffeIdFromSubjectAltName(cert.subjectAltName);
  if (cert.ca)
    return new IdentityError(
      'BATON_PEER_NOT_WORKLOAD',
      `expected a workload (leaf) certificate, got a CA certificate naming ${spiffeId ?? 'no SPIFFE ID'} (X509-SVID §4.1)`,
    );
  return spiffeId === undefined ? undefined : { spiffeId, thumbprint: certificateThumbprint(cert) };
}

const PEERS = new WeakMap<TLSSocket, PeerIdentity | IdentityError | undefined>();

/**
 * On a port where client certificates are optional, a certificate that is
 * presented must still verify against the bundle: node lets an unverified
 * one through (`rejectUnauthorized: false`), so such connections are cut
 * as soon as the handshake ends, before a request is read.
 */
export function refuseUnverifiedPeers(server: {
  on(event: 'secureConnection', listener: (socket: TLSSocket) => void): unknown;
}): void {
  server.on('secureConnection', (socket) => {
    if (socket.authorized) return;
    const presented = socket.getPeerCertificate();
    if (presented !== null && typeof presented === 'object' && Object.keys(presented).length > 0) socket.destroy();
  });
}
