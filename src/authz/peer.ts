/**
 * Who is on the other end of the connection the proxy terminated, as the
 * proxy tells it: in authorizer mode baton never sees the TLS handshake, so
 * the peer is the proxy's word, which is why the check ports listen on
 * loopback only (docs/security.md, "Authorizer mode").
 *
 * - Envoy's gRPC CheckRequest: `attributes.source.principal` (the URI SAN of
 *   the certificate Envoy verified: the SPIFFE ID) and, with
 *   `include_peer_certificate`, `attributes.source.certificate` (the
 *   certificate, URL-encoded PEM).
 * - HTTP (Envoy's HTTP service, nginx): the last element of
 *   `x-forwarded-client-cert` (XFCC), the one the proxy in front of baton
 *   wrote: `URI` (the SPIFFE ID), `Hash` (hex SHA-256 of the certificate's
 *   DER) and `Cert` (URL-encoded PEM). nginx writes `Cert` from
 *   `$ssl_client_escaped_cert`.
 *
 * A certificate, when passed, is what counts: its SPIFFE ID and its
 * thumbprint (RFC 8705 §3.1). A principal alone gives the service but no
 * thumbprint, and the token binding then holds the token's caller to that
 * service (src/sidecar/edge-check.ts).
 */
import { X509Certificate } from 'node:crypto';
import { IdentityError } from '../identity/errors.ts';
import type { ServiceMap } from '../identity/service-map.ts';
import { parseSpiffeId, spiffeIdFromSubjectAltName } from '../identity/spiffe-id.ts';
import { certificateThumbprint } from '../identity/svid.ts';
import { PeerNotWorkloadError, PeerUnmappedError } from '../sidecar/errors.ts';
import type { Peer } from '../sidecar/edge-check.ts';
import { MalformedCheckError } from './errors.ts';

/** The peer as a proxy describes it; every field as the proxy sent it. */
export interface ProxyPeer {
  /** The verified identity: a SPIFFE ID for a mesh workload. */
  readonly principal?: string | undefined;
  /** The certificate, URL-encoded PEM (Envoy's `source.certificate`, XFCC `Cert`, nginx `$ssl_client_escaped_cert`). */
  readonly certificate?: string | undefined;
  /** Hex SHA-256 of the certificate's DER (XFCC `Hash`). */
  readonly certificateHash?: string | undefined;
}

// A URL-encoded PEM certificate of a workload is a few kilobytes; a chain of them still under this.
const MAX_CERTIFICATE_CHARS = 32_768;
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;
const SHA256_HEX = /^[0-9a-fA-F]{64}$/;

/**
 * The peer a proxy describes, mapped to its service; undefined when it
 * describes none (a connection without a client certificate). Throws the
 * sidecar's refusals for a certificate or principal that names no service
 * (403 `BATON_PEER_UNMAPPED`) or a CA certificate (403
 * `BATON_PEER_NOT_WORKLOAD`), and `BATON_AUTHZ_MALFORMED_CHECK` for a
 * description that contradicts itself.
 */
export function peerOfProxy(described: ProxyPeer | undefined, map: ServiceMap): Peer | undefined {
  if (described === undefined) return undefined;
  const principal = nonEmpty(described.principal);
  const certificate = nonEmpty(described.certificate);
  const hash = nonEmpty(described.certificateHash);
  if (principal === undefined && certificate === undefined && hash === undefined) return undefined;

  let thumbprint: string | undefined;
  let certified: string | undefined;
  if (certificate !== undefined) {
    const cert = parseCertificate(certificate);
    // X509-SVID §4.1: a signing certificate is no workload, whatever SPIFFE ID it carries.
    if (cert.ca)
      throw new PeerNotWorkloadError(
        "expected the peer's workload (leaf) certificate, got a CA certificate (X509-SVID §4.1)",
      );
    thumbprint = certificateThumbprint(cert);
    certified = spiffeIdFromSubjectAltName(cert.subjectAltName);
    if (certified === undefined)
      throw new PeerUnmappedError('expected a peer certificate whose only URI SAN is a SPIFFE ID, got one without');
    if (hash !== undefined && thumbprintOfHash(hash) !== thumbprint)
      throw malformed(
        'peer-certificate-hash',
        "expected the peer certificate's hash to be its own, got the hash of another certificate",
      );
  } else if (hash !== undefined) {
    thumbprint = thumbprintOfHash(hash);
  }
  if (certified !== undefined && principal !== undefined && principal !== certified) {
    throw malformed(
      'peer-principal-mismatch',
      `expected the peer principal to be the SPIFFE ID of the peer certificate (${certified}), got another`,
    );
  }
  const id = certified ?? principal;
  if (id === undefined)
    throw malformed(
      'peer-without-principal',
      "expected the peer's principal (SPIFFE ID) with its certificate hash, got the hash alone",
    );
  let spiffeId: string;
  try {
    spiffeId = parseSpiffeId(id).id;
  } catch (error) {
    if (!(error instanceof IdentityError)) throw error;
    throw new PeerUnmappedError(`expected a peer principal that is a SPIFFE ID, got '${id.slice(0, 80)}'`, {
      cause: error,
    });
  }
  const service = map.serviceOf(spiffeId);
  if (service === undefined)
    throw new PeerUnmappedError(`expected a peer whose SPIFFE ID maps to a service, got ${spiffeId}`);
  return { service, spiffeId, thumbprint };
}

function parseCertificate(encoded: string): X509Certificate {
  if (encoded.length > MAX_CERTIFICATE_CHARS)
    throw malformed(
      'peer-certificate',
      `expected a peer certificate of at most ${MAX_CERTIFICATE_CHARS} characters, got ${encoded.length}`,
    );
  let pem: string;
  try {
    pem = decodeURIComponent(encoded);
  } catch {
    throw malformed('peer-certificate', 'expected the peer certificate URL-encoded, got an invalid escape');
  }
  // Leaf first, as Envoy and nginx pass it; any chain after it is not the peer.
  const block = PEM_CERT.exec(pem)?.[0];
  if (block === undefined) throw malformed('peer-certificate', 'expected the peer certificate in PEM, got none');
  try {
    return new X509Certificate(block);
  } catch {
    throw malformed('peer-certificate', 'expected the peer certificate in PEM, got one that does not parse');
  }
}

/** RFC 8705 §3.1 `x5t#S256` (base64url) from a hex SHA-256 of the DER. */
function thumbprintOfHash(hex: string): string {
  if (!SHA256_HEX.test(hex))
    throw malformed('peer-certificate-hash', 'expected the peer certificate hash as 64 hex digits (SHA-256)');
  return Buffer.from(hex, 'hex').toString('base64url');
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function malformed(reason: string, detail: string): InstanceType<typeof MalformedCheckError> {
  return new MalformedCheckError(detail, { extensions: { reason } });
}

// --- x-forwarded-client-cert ---

/**
 * The peer in the last element of an `x-forwarded-client-cert` value: the
 * element the proxy in front of baton appended (Envoy's
 * `forward_client_cert_details: SANITIZE_SET` writes only that one; nginx's
 * `proxy_set_header` replaces the caller's). Envoy's grammar: elements
 * separated by `,`, `key=value` pairs by `;`, a value containing `,` `;` or
 * `=` double-quoted with `\"` inside. Undefined when the header is absent.
 */
export function peerOfXfcc(value: string | undefined): ProxyPeer | undefined {
  if (value === undefined || value === '') return undefined;
  const elements = splitOutsideQuotes(value, ',');
  const last = elements[elements.length - 1];
  if (last === undefined) return undefined;
  const fields = new Map<string, string>();
  for (const pair of splitOutsideQuotes(last, ';')) {
    const eq = pair.indexOf('=');
    if (eq <= 0)
      throw malformed('xfcc', 'expected x-forwarded-client-cert as key=value pairs, got a pair without a key');
    const key = pair.slice(0, eq).trim().toLowerCase();
    // Each key once per element: a second URI or Hash would be a second identity.
    if (fields.has(key) && (key === 'uri' || key === 'hash' || key === 'cert'))
      throw malformed('xfcc', `expected one ${key} in the last x-forwarded-client-cert element, got several`);
    fields.set(key, unquote(pair.slice(eq + 1).trim()));
  }
  return { principal: fields.get('uri'), certificate: fields.get('cert'), certificateHash: fields.get('hash') };
}

function splitOutsideQuotes(text: string, separator: string): string[] {
  const out: string[] = [];
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && quoted) i++;
    else if (c === '"') quoted = !quoted;
    else if (c === separator && !quoted) {
      out.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  if (quoted) throw malformed('xfcc', 'expected x-forwarded-client-cert with closed quotes, got an open one');
  out.push(text.slice(start).trim());
  return out.filter((part) => part !== '');
}

function unquote(value: string): string {
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"'))
    return value.slice(1, -1).replace(/\\(.)/g, '$1');
  return value;
}
