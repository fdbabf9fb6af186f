/**
 * An X509-SVID as loaded from files: the certificate chain (leaf first),
 * its private key and the trust bundle of the trust domain. `parseSvid`
 * checks everything a peer would check, so a bad rotation is caught when
 * the files change, not at the first handshake: the leaf carries exactly
 * one SPIFFE ID (X509-SVID §2), is not a CA (§4.1), is signed up to the
 * bundle, is inside its validity window, and the key is the leaf's.
 */
import { createHash, createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { IdentityError } from './errors.ts';
import { spiffeIdFromSubjectAltName, type SpiffeId } from './spiffe-id.ts';

export interface SvidPem {
  readonly cert: string;
  readonly key: string;
  readonly bundle: string;
}

export interface Svid {
  readonly spiffeId: SpiffeId;
  /** PEM texts as read, for TLS contexts. */
  readonly pem: SvidPem;
  readonly leaf: X509Certificate;
  readonly privateKey: KeyObject;
  /** Epoch milliseconds. */
  readonly notBefore: number;
  readonly notAfter: number;
  /** RFC 8705 §3.1 `x5t#S256`: base64url SHA-256 of the leaf's DER. */
  readonly thumbprint: string;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const MAX_CHAIN = 8;

export function splitPemCertificates(text: string, what: string): X509Certificate[] {
  const blocks = text.match(PEM_CERT) ?? [];
  if (blocks.length === 0)
    throw new IdentityError('BATON_IDENTITY_INVALID', `expected ${what} to hold PEM certificates, got none`);
  try {
    return blocks.map((block) => new X509Certificate(block));
  } catch (error) {
    throw new IdentityError(
      'BATON_IDENTITY_INVALID',
      `expected ${what} to hold valid certificates, got one that does not parse`,
      { cause: error },
    );
  }
}

/** RFC 8705 §3.1: the certificate thumbprint bound into `cnf.x5t#S256`. */
export function certificateThumbprint(cert: X509Certificate): string {
  return createHash('sha256').update(cert.raw).digest('base64url');
}

export function parseSvid(pem: SvidPem, now: number): Svid {
  const chain = splitPemCertificates(pem.cert, 'the certificate file');
  const bundle = splitPemCertificates(pem.bundle, 'the trust bundle');
  const leaf = chain[0] as X509Certificate;
  if (leaf.ca)
    throw new IdentityError(
      'BATON_IDENTITY_INVALID',
      'expected a leaf certificate, got a CA certificate (X509-SVID §4.1)',
    );
  const spiffeId = spiffeIdFromSubjectAltName(leaf.subjectAltName);
  if (spiffeId === undefined)
    throw new IdentityError(
      'BATON_IDENTITY_INVALID',
      'expected a certificate with exactly one URI SAN that is a SPIFFE ID, got none or several',
    );

  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem.key);
  } catch (error) {
    throw new IdentityError(
      'BATON_IDENTITY_INVALID',
      'expected the key file to hold a PEM private key, got something else',
      { cause: error },
    );
  }
  if (!leaf.checkPrivateKey(privateKey))
    throw new IdentityError('BATON_IDENTITY_INVALID', `expected the private key of ${spiffeId}, got another key`);

  assertChainsToBundle(leaf, chain.slice(1), bundle, spiffeId);
  const notBefore = Date.parse(leaf.validFrom);
  const notAfter = Date.parse(leaf.validTo);
  if (now < notBefore || now >= notAfter) {
    const validity = { spiffeId, notBefore, notAfter };
    const window = `valid from ${new Date(notBefore).toISOString()} to ${new Date(notAfter).toISOString()}`;
    if (now < notBefore)
      throw new IdentityError(
        'BATON_IDENTITY_NOT_YET_VALID',
        `expected a certificate valid now (${new Date(now).toISOString()}), got one for ${spiffeId} ${window}: not valid yet`,
        { validity },
      );
    throw new IdentityError(
      'BATON_IDENTITY_EXPIRED',
      `expected a certificate valid now (${new Date(now).toISOString()}), got one for ${spiffeId} ${window}: expired`,
      { validity },
    );
  }
  return { spiffeId, pem, leaf, privateKey, notBefore, notAfter, thumbprint: certificateThumbprint(leaf) };
}

/** Walks issuer links from the leaf through the intermediates to a certificate of the bundle. */
function assertChainsToBundle(
  leaf: X509Certificate,
  intermediates: readonly X509Certificate[],
  bundle: readonly X509Certificate[],
  id: SpiffeId,
): void {
  let current = leaf;
  for (let depth = 0; depth < MAX_CHAIN; depth++) {
    const issuedBy = (candidate: X509Certificate): boolean =>
      candidate.ca && current.checkIssued(candidate) && current.verify(candidate.publicKey);
    if (bundle.some(issuedBy)) return;
    const next = intermediates.find(issuedBy);
    if (next === undefined) break;
    current = next;
  }
  throw new IdentityError(
    'BATON_IDENTITY_UNTRUSTED',
    `expected the certificate of ${id} to chain to the trust bundle, got one that does not`,
  );
}
