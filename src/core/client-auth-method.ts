/**
 * How an OAuth client authenticates at a token endpoint, in the names of
 * IANA's "OAuth Token Endpoint Authentication Methods" registry (RFC 7591
 * §2, RFC 8414 §2). Declared once, here, for both sides of the STS's token
 * endpoint: the STS that checks a client (src/sts/client-auth.ts) and the
 * sidecar that is one (src/sidecar/exchange/sts-client.ts).
 */

/**
 * `client_secret_basic` and `client_secret_post` (RFC 6749 §2.3.1),
 * `private_key_jwt` (RFC 7523 §2.2), `tls_client_auth` (RFC 8705 §2.1).
 */
export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt' | 'tls_client_auth';

/**
 * The methods a sidecar authenticates to the STS with: its workload
 * certificate or a secret. A sidecar holds no signing key of its own for
 * `private_key_jwt`.
 */
export type SidecarClientAuthMethod = Exclude<ClientAuthMethod, 'private_key_jwt'>;
