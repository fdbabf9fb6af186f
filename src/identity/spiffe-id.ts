/**
 * SPIFFE IDs (SPIFFE-ID standard §2): `spiffe://<trust-domain><path>`. The
 * parser is strict because the ID is what a peer's certificate is trusted
 * *as*: a lax parse (case folding, a port, a `..` segment, a percent
 * escape) would let two spellings name one workload, or one spelling two.
 */
import { IdentityError } from './errors.ts';

export type SpiffeId = string & { readonly __brand: 'SpiffeId' };

export interface ParsedSpiffeId {
  readonly id: SpiffeId;
  readonly trustDomain: string;
  /** `''` for the trust domain's own ID, else `/seg/seg…`. */
  readonly path: string;
  readonly segments: readonly string[];
}

// §2.1: trust domain characters are lowercase letters, digits, '.', '-' and '_' only.
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;
// §2.2: path segments are letters, digits, '.', '-' and '_', never '.' or '..' alone.
const SEGMENT = /^[A-Za-z0-9._-]+$/;
// §2.3: an ID is at most 2048 bytes; it is ASCII by the rules above.
const MAX_ID_LENGTH = 2048;
const SCHEME = 'spiffe://';

export function isTrustDomain(value: string): boolean {
  return TRUST_DOMAIN.test(value);
}

/** Mints a `SpiffeId`, or throws `BATON_IDENTITY_SPIFFE_ID_INVALID` saying what is wrong with it. */
export function spiffeId(text: string): SpiffeId {
  assertSpiffeId(text);
  return text;
}

export function parseSpiffeId(value: string): ParsedSpiffeId {
  assertSpiffeId(value);
  const rest = value.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  const path = slash === -1 ? '' : rest.slice(slash);
  return {
    id: value,
    trustDomain: slash === -1 ? rest : rest.slice(0, slash),
    path,
    segments: path === '' ? [] : path.slice(1).split('/'),
  };
}

function assertSpiffeId(value: string): asserts value is SpiffeId {
  const refuse = (why: string): never => {
    throw new IdentityError(
      'BATON_IDENTITY_SPIFFE_ID_INVALID',
      `expected a SPIFFE ID (spiffe://trust-domain/path), got one that ${why}`,
    );
  };
  if (value.length > MAX_ID_LENGTH) refuse(`is longer than ${MAX_ID_LENGTH} bytes`);
  // §2: the scheme is lowercase 'spiffe'; §2.1: no userinfo, no port; §2.2: no query or fragment.
  if (!value.startsWith(SCHEME)) refuse("does not start with 'spiffe://'");
  const rest = value.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  if (!TRUST_DOMAIN.test(trustDomain))
    refuse('has an empty trust domain or one with characters other than a-z 0-9 . - _');
  const segments = path === '' ? [] : path.slice(1).split('/');
  for (const segment of segments) {
    if (segment === '') refuse('has an empty path segment or a trailing slash');
    if (segment === '.' || segment === '..') refuse("has a '.' or '..' path segment");
    if (!SEGMENT.test(segment)) refuse('has a path segment with characters other than A-Z a-z 0-9 . - _');
  }
}

/**
 * The SPIFFE ID a certificate names: X509-SVID §2 requires exactly one URI
 * SAN, and it must be a SPIFFE ID. `subjectAltName` is node's rendering
 * (`URI:spiffe://…, DNS:…`); a SPIFFE ID cannot contain ', ' or quotes, so
 * a quoted (escaped) entry is never one.
 */
export function spiffeIdFromSubjectAltName(subjectAltName: string | undefined): SpiffeId | undefined {
  if (subjectAltName === undefined) return undefined;
  const uris = subjectAltName
    .split(', ')
    .filter((entry) => entry.startsWith('URI:'))
    .map((entry) => entry.slice(4));
  if (uris.length !== 1) return undefined;
  try {
    return parseSpiffeId(uris[0] as string).id;
  } catch {
    return undefined;
  }
}
