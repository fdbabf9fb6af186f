/**
 * Fetching a JWK Set and authorization server metadata over HTTP with hard
 * bounds: a deadline, a size cap, no redirects (undici's `request` follows
 * none, so a compromised endpoint cannot point us at another host), and the
 * JSON validated before it is trusted.
 */
import type { JSONWebKeySet } from 'jose';
import { type Dispatcher, request } from 'undici';
import { BodyTooLargeError, readBoundedText } from '../core/bounded-text.ts';
import { BatonError } from '../core/errors.ts';
import { isRocaModulus, rsaModulus } from './weak-rsa.ts';

export interface FetchLimits {
  readonly dispatcher?: Dispatcher;
  readonly timeoutMs: number;
  readonly maxBytes: number;
}

/** A key set or an issuer's metadata could not be had; the key source keeps its last good keys, and answers for it once it has none. */
export class JwksFetchError extends BatonError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('BATON_TOKEN_ISSUER_UNAVAILABLE', message, options);
    this.name = 'JwksFetchError';
  }
}

export async function fetchJson(url: string, limits: FetchLimits): Promise<unknown> {
  const signal = AbortSignal.timeout(limits.timeoutMs);
  let response: Dispatcher.ResponseData;
  try {
    response = await request(url, {
      method: 'GET',
      headers: { accept: 'application/json, application/jwk-set+json' },
      signal,
      headersTimeout: limits.timeoutMs,
      bodyTimeout: limits.timeoutMs,
      ...(limits.dispatcher === undefined ? {} : { dispatcher: limits.dispatcher }),
    });
  } catch (cause) {
    throw new JwksFetchError(`GET ${url} failed: ${describe(cause)}`, { cause });
  }
  if (response.statusCode !== 200) {
    response.body.resume();
    throw new JwksFetchError(`GET ${url}: expected status 200, got ${response.statusCode}`);
  }
  const declared = Number(response.headers['content-length']);
  if (Number.isFinite(declared) && declared > limits.maxBytes) {
    response.body.destroy();
    throw new JwksFetchError(`GET ${url}: expected at most ${limits.maxBytes} bytes, got ${declared}`);
  }
  let text: string;
  try {
    text = await readBoundedText(response.body, limits.maxBytes);
  } catch (cause) {
    if (cause instanceof BodyTooLargeError)
      throw new JwksFetchError(`GET ${url}: expected at most ${limits.maxBytes} bytes, got more`);
    throw new JwksFetchError(`GET ${url}: reading the body failed: ${describe(cause)}`, { cause });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new JwksFetchError(`GET ${url}: expected JSON`, { cause });
  }
}

/**
 * A JWK Set fit to verify with: public, asymmetric signing keys only, no
 * ROCA-weak RSA moduli, and no two keys sharing a `kid` (Wycheproof's DuplicateKid/MixedKeySet cases:
 * an ambiguous set is refused whole, and the last good one kept).
 */
export function validateJwks(value: unknown): JSONWebKeySet {
  if (typeof value !== 'object' || value === null || !Array.isArray((value as { keys?: unknown }).keys)) {
    throw new JwksFetchError('expected a JWK Set: an object with a keys array');
  }
  const keys: JSONWebKeySet['keys'] = [];
  const kids = new Set<string>();
  for (const key of (value as { keys: unknown[] }).keys) {
    if (typeof key !== 'object' || key === null || Array.isArray(key))
      throw new JwksFetchError('expected every JWK to be an object');
    const jwk = key as Record<string, unknown>;
    if (typeof jwk.kty !== 'string') throw new JwksFetchError('expected every JWK to have a kty');
    // A published private or symmetric key means the set itself is compromised or misconfigured.
    if (jwk.kty === 'oct' || 'd' in jwk || 'k' in jwk)
      throw new JwksFetchError('expected only public asymmetric keys in the JWK Set');
    if (jwk.kid !== undefined) {
      if (typeof jwk.kid !== 'string') throw new JwksFetchError('expected kid to be a string');
      if (kids.has(jwk.kid))
        throw new JwksFetchError(`expected unique kids, got ${JSON.stringify(jwk.kid.slice(0, 64))} twice`);
      kids.add(jwk.kid);
    }
    if (jwk.use !== undefined && jwk.use !== 'sig') continue;
    // A ROCA modulus is public-key-factorable: skip the key, keep the rest of the set.
    if (jwk.kty === 'RSA' && typeof jwk.n === 'string' && isRocaModulus(rsaModulus(jwk.n))) continue;
    keys.push(jwk as JSONWebKeySet['keys'][number]);
  }
  return { keys };
}

/**
 * RFC 8414 §3.1: the well-known segment goes between host and path;
 * OpenID Connect Discovery 1.0 §4 appends it to the issuer instead.
 */
export function discoveryUrls(issuer: string): string[] {
  const url = new URL(issuer);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return [
    `${url.origin}/.well-known/oauth-authorization-server${path}`,
    `${url.origin}${path}/.well-known/openid-configuration`,
  ];
}

/**
 * The issuer's metadata: RFC 8414 first, then OpenID Connect Discovery,
 * each refused unless its `issuer` is the one it was fetched for.
 */
export async function discoverMetadata(
  issuer: string,
  limits: FetchLimits,
): Promise<Readonly<Record<string, unknown>>> {
  const failures: string[] = [];
  for (const url of discoveryUrls(issuer)) {
    try {
      const metadata = await fetchJson(url, limits);
      if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))
        throw new JwksFetchError(`${url}: expected a JSON object`);
      const claimed = (metadata as { issuer?: unknown }).issuer;
      // RFC 8414 §3.3 / OpenID Connect Discovery §4.3: the issuer in the metadata MUST be identical to the one it was fetched for.
      if (claimed !== issuer)
        throw new JwksFetchError(`${url}: expected issuer ${issuer}, got ${String(claimed).slice(0, 200)}`);
      return metadata as Record<string, unknown>;
    } catch (error) {
      failures.push(describe(error));
    }
  }
  throw new JwksFetchError(`discovery for ${issuer} failed: ${failures.join('; ')}`);
}

/** An http(s) endpoint named by a metadata member, or an error naming the member. */
export function metadataEndpoint(metadata: Readonly<Record<string, unknown>>, member: string, issuer: string): string {
  const value = metadata[member];
  if (typeof value !== 'string' || !/^https?:\/\//.test(value))
    throw new JwksFetchError(`discovery for ${issuer}: expected an http(s) ${member}`);
  return value;
}

export async function discoverJwksUri(issuer: string, limits: FetchLimits): Promise<string> {
  return metadataEndpoint(await discoverMetadata(issuer, limits), 'jwks_uri', issuer);
}

/**
 * An error as one line an operator can act on: its message, and the system's
 * code when the message does not say it (undici's TLS and timeout errors do
 * not); for an AggregateError (each address of a name refused), each cause.
 */
export function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  const inner =
    error instanceof AggregateError && error.errors.length > 0
      ? [...new Set(error.errors.map(describe))].join(', ')
      : '';
  const message = error.message === '' ? inner : inner === '' ? error.message : `${error.message}: ${inner}`;
  return typeof code === 'string' && !message.includes(code)
    ? `${message || error.name} (${code})`
    : message || error.name;
}
