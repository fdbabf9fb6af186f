/**
 * RFC 8414 §2 authorization server metadata for the STS, and where it and
 * the endpoints it names are served: under the issuer's path, so an issuer
 * with a path (`https://sts.example/mesh-a`) works end to end.
 */
import { CLIENT_CREDENTIALS_GRANT, TOKEN_EXCHANGE_GRANT } from '../core/token-types.ts';
import { CLIENT_AUTH_METHODS } from './client-auth.ts';
import { ASSERTION_ALGORITHMS } from './jwt-assertion.ts';

export interface StsEndpoints {
  readonly issuer: string;
  readonly tokenEndpoint: string;
  readonly jwksUri: string;
}

/** The URL paths the STS answers on for an issuer: its endpoints and its two metadata documents. */
export interface StsPaths {
  readonly token: string;
  readonly jwks: string;
  /** RFC 8414 §3.1: `/.well-known/oauth-authorization-server` inserted before the issuer's path. */
  readonly authorizationServerMetadata: string;
  /** OpenID Connect Discovery 1.0 §4: `/.well-known/openid-configuration` appended to the issuer. */
  readonly openidConfiguration: string;
}

/** The issuer's path with any terminating "/" removed (RFC 8414 §3.1): '' for an issuer without one. */
function issuerPath(issuer: string): string {
  return new URL(issuer).pathname.replace(/\/+$/, '');
}

export function stsEndpoints(issuer: string): StsEndpoints {
  const base = issuer.replace(/\/+$/, '');
  return { issuer, tokenEndpoint: `${base}/token`, jwksUri: `${base}/jwks` };
}

export function stsPaths(issuer: string): StsPaths {
  const path = issuerPath(issuer);
  return {
    token: `${path}/token`,
    jwks: `${path}/jwks`,
    authorizationServerMetadata: `/.well-known/oauth-authorization-server${path}`,
    openidConfiguration: `${path}/.well-known/openid-configuration`,
  };
}

export function authorizationServerMetadata(
  endpoints: StsEndpoints,
  signingAlgs: readonly string[],
  mtls = false,
): Readonly<Record<string, unknown>> {
  return Object.freeze({
    issuer: endpoints.issuer,
    token_endpoint: endpoints.tokenEndpoint,
    jwks_uri: endpoints.jwksUri,
    grant_types_supported: [TOKEN_EXCHANGE_GRANT, CLIENT_CREDENTIALS_GRANT],
    // RFC 8414 §2 lists response_types_supported as REQUIRED; this server has no authorization endpoint, so none.
    response_types_supported: [],
    token_endpoint_auth_methods_supported: mtls
      ? ['tls_client_auth', ...CLIENT_AUTH_METHODS]
      : [...CLIENT_AUTH_METHODS],
    token_endpoint_auth_signing_alg_values_supported: [...ASSERTION_ALGORITHMS],
    // Not registered by RFC 8414, but what clients of baton read: how issued tokens are signed.
    access_token_signing_alg_values_supported: [...signingAlgs],
    // RFC 8705 §3.3: tokens for certificate-authenticated clients are bound to the certificate.
    ...(mtls ? { tls_client_certificate_bound_access_tokens: true } : {}),
  });
}
