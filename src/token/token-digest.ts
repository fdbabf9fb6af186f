/**
 * The digest a token is known by in the sidecar's caches (verified tokens,
 * context handles): SHA-256 of its exact bytes, base64url. Computed once per
 * request and handed to each cache, not once per cache.
 */
import { hash } from 'node:crypto';

export function tokenDigest(token: string): string {
  return hash('sha256', token, 'base64url');
}
