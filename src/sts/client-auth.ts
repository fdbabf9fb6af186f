/**
 * Who is calling the token endpoint. The authenticated client is the actor
 * every issued token names: nothing in the request body can choose it.
 * Methods: `client_secret_basic` (RFC 6749 §2.3.1), `client_secret_post`
 * (ibid.), `private_key_jwt` (RFC 7523 §2.2, OpenID Connect Core §9),
 * `tls_client_auth` (RFC 8705 §2.1, matched on the SAN URI).
 *
 * A certificate presented on the TLS connection (verified against the
 * trust bundle by the listener) must be the authenticated client's,
 * whatever the method: a workload cannot authenticate as one client while
 * holding another's certificate. Its thumbprint is what issued tokens are
 * bound to (RFC 8705 §3).
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { ClientAuthMethod } from '../core/client-auth-method.ts';
import { JWT_BEARER_ASSERTION_TYPE } from '../core/token-types.ts';
import { IdentityError } from '../identity/errors.ts';
import { peerIdentity, type PeerIdentity } from '../identity/tls.ts';
import type { AuthThrottle } from './auth-throttle.ts';
import type { ClientRegistry, RegisteredClient } from './clients.ts';
import type { TokenRequestParams } from './form.ts';
import { AssertionError, peekIssuerAndSubject, verifyClientSignedJwt } from './jwt-assertion.ts';
import { BadRequestError } from '../core/errors.ts';
import { TokenIssuerUnavailableError } from '../token/errors.ts';
import { InvalidClientError } from './errors.ts';
import type { ReplayStore } from './replay-store.ts';
import { plainSecretVerifier } from './secret-hash.ts';

export const CLIENT_AUTH_METHODS: readonly ClientAuthMethod[] = [
  'client_secret_basic',
  'client_secret_post',
  'private_key_jwt',
];

export interface AuthenticatedClient {
  readonly client: RegisteredClient;
  readonly method: ClientAuthMethod;
  /** RFC 8705 §3.1: `x5t#S256` of the client certificate on the connection, when one was presented; tokens are bound to it. */
  readonly certificateThumbprint?: string;
}

export interface ClientAuthenticatorOptions {
  readonly registry: ClientRegistry;
  readonly issuer: string;
  readonly tokenEndpoint: string;
  readonly replay: ReplayStore;
  readonly clockToleranceSec: number;
  readonly now: () => number;
  /** Bounds costly secret checks and failed attempts per client and per peer; none in unit tests. */
  readonly throttle?: AuthThrottle;
}

export interface ClientPeer {
  /** The caller's address. */
  readonly address: string;
  /** The verified client certificate of the TLS connection, if one was presented. */
  readonly certificate?: PeerIdentity | undefined;
}

export interface ClientAuthenticator {
  /**
   * `peer`: where the call came from: its address, for the per-peer failure
   * limit, and the verified client certificate of the TLS connection, if any.
   */
  authenticate(
    authorization: string | undefined,
    params: TokenRequestParams,
    peer?: ClientPeer,
  ): Promise<AuthenticatedClient>;
}

/**
 * The verified client certificate of the connection a token request came on,
 * if one was presented. A CA certificate is refused as invalid_client, not
 * read as the workload whose SPIFFE ID it carries (X509-SVID §4.1): the key
 * of a signing certificate must not be able to authenticate as a client.
 */
export function clientCertificateOf(socket: Socket): PeerIdentity | undefined {
  if (!(socket instanceof TLSSocket)) return undefined;
  try {
    return peerIdentity(socket);
  } catch (error) {
    if (error instanceof IdentityError && error.code === 'BATON_PEER_NOT_WORKLOAD')
      throw new InvalidClientError(`expected a workload client certificate: ${error.message}`, {
        cause: error,
        reason: 'ca-certificate',
      });
    throw error;
  }
}

// Spent on unknown client ids so that a probe cannot tell them from a wrong secret by timing.
const DECOY = plainSecretVerifier('baton-sts-decoy-secret-never-matches');

export function createClientAuthenticator(options: ClientAuthenticatorOptions): ClientAuthenticator {
  const audiences = [options.tokenEndpoint, options.issuer];

  const { throttle } = options;

  const bySecret = async (
    clientId: string,
    secret: string,
    method: ClientAuthMethod,
    peer: string,
  ): Promise<AuthenticatedClient> => {
    const client = options.registry.get(clientId);
    const verifier = client?.secret ?? DECOY;
    // A secret this process has verified before costs an HMAC compare and is never throttled.
    if (client?.secret !== undefined && verifier.known(secret)) return { client, method };
    throttle?.admit(clientId, peer);
    const ok =
      verifier.costly && throttle !== undefined
        ? await throttle.costly(() => verifier.verify(secret))
        : await verifier.verify(secret);
    if (client === undefined || client.secret === undefined || !ok) {
      throttle?.failed(clientId, peer);
      throw new InvalidClientError(
        'expected a registered client id with its secret, got an unknown client or a wrong secret',
      );
    }
    return { client, method };
  };

  const byAssertion = async (
    assertion: string,
    bodyClientId: string | undefined,
    peer: string,
  ): Promise<AuthenticatedClient> => {
    const { iss, sub } = peekIssuerAndSubject(assertion);
    const clientId = sub ?? iss;
    throttle?.admit(clientId ?? '', peer);
    try {
      return await verifyAssertion(assertion, clientId, bodyClientId);
    } catch (error) {
      if (error instanceof InvalidClientError) throttle?.failed(clientId ?? '', peer);
      throw error;
    }
  };

  const verifyAssertion = async (
    assertion: string,
    clientId: string | undefined,
    bodyClientId: string | undefined,
  ): Promise<AuthenticatedClient> => {
    const client = clientId === undefined ? undefined : options.registry.get(clientId);
    if (client === undefined || client.keys === undefined) {
      throw new InvalidClientError(
        'expected a client assertion from a registered client with keys, got an unknown client',
      );
    }
    if (bodyClientId !== undefined && bodyClientId !== client.id) {
      throw new InvalidClientError('expected client_id to equal the client assertion sub, got a different client');
    }
    try {
      await verifyClientSignedJwt(assertion, {
        clientId: client.id,
        keys: client.keys,
        audiences,
        jtiRequired: true,
        purpose: 'assertion',
        replay: options.replay,
        clockToleranceSec: options.clockToleranceSec,
        now: options.now,
      });
    } catch (error) {
      if (error instanceof AssertionError) {
        if (error.code === TokenIssuerUnavailableError.code)
          throw new TokenIssuerUnavailableError(`client assertion: ${error.message}`, { cause: error, reason: 'jwks' });
        throw new InvalidClientError(`client assertion: ${error.message}`, { cause: error, reason: error.reason });
      }
      throw error;
    }
    return { client, method: 'private_key_jwt' };
  };

  /** RFC 8705 §2.1.2: the client registered for tls_client_auth whose SAN URI is the certificate's SPIFFE ID. */
  const byCertificate = (clientId: string | undefined, peer: PeerIdentity): AuthenticatedClient => {
    // RFC 8705 §2: with mutual-TLS client authentication the client_id parameter is REQUIRED.
    if (clientId === undefined)
      throw new InvalidClientError('expected client_id with a client certificate (RFC 8705 §2), got none');
    const client = options.registry.get(clientId);
    if (client === undefined || client.tlsClientAuthSanUri === undefined)
      throw new InvalidClientError(
        'expected a client registered for tls_client_auth, got an unknown client or one with another method',
      );
    if (client.tlsClientAuthSanUri !== peer.spiffeId)
      throw new InvalidClientError(`expected the certificate of client ${client.id}, got one naming ${peer.spiffeId}`);
    return { client, method: 'tls_client_auth' };
  };

  /** Any presented certificate must be the authenticated client's; the token is then bound to it. */
  const withCertificate = (authenticated: AuthenticatedClient, peer: PeerIdentity | undefined): AuthenticatedClient => {
    if (peer === undefined) return authenticated;
    const expected = authenticated.client.certificateId;
    if (expected !== peer.spiffeId) {
      throw new InvalidClientError(
        `expected a client certificate for client ${authenticated.client.id}, got one naming ${peer.spiffeId}`,
      );
    }
    return { ...authenticated, certificateThumbprint: peer.thumbprint };
  };

  const authenticate = async (
    authorization: string | undefined,
    params: TokenRequestParams,
    peer: ClientPeer,
  ): Promise<AuthenticatedClient> => {
    const basic =
      authorization !== undefined && /^basic /i.test(authorization) ? decodeBasic(authorization) : undefined;
    const postedSecret = params.get('client_secret');
    const assertionType = params.get('client_assertion_type');
    const assertion = params.get('client_assertion');
    const used = [
      basic !== undefined,
      postedSecret !== undefined,
      assertion !== undefined || assertionType !== undefined,
    ].filter(Boolean).length;
    // RFC 6749 §2.3: the client MUST NOT use more than one authentication method in each request.
    if (used > 1)
      throw new BadRequestError('expected one client authentication method, got several', {
        reason: 'several-auth-methods',
      });
    if (basic !== undefined) {
      const bodyClientId = params.get('client_id');
      if (bodyClientId !== undefined && bodyClientId !== basic.clientId) {
        throw new InvalidClientError('expected client_id to match the Basic credentials, got a different client');
      }
      return await bySecret(basic.clientId, basic.secret, 'client_secret_basic', peer.address);
    }
    if (postedSecret !== undefined) {
      const clientId = params.get('client_id');
      if (clientId === undefined) throw new InvalidClientError('expected client_id with client_secret, got none');
      return await bySecret(clientId, postedSecret, 'client_secret_post', peer.address);
    }
    if (assertion !== undefined || assertionType !== undefined) {
      if (assertionType !== JWT_BEARER_ASSERTION_TYPE) {
        throw new InvalidClientError(`expected client_assertion_type ${JWT_BEARER_ASSERTION_TYPE} (RFC 7523 §2.2)`);
      }
      if (assertion === undefined) throw new InvalidClientError('expected a client_assertion, got none');
      return await byAssertion(assertion, params.get('client_id'), peer.address);
    }
    if (peer.certificate !== undefined) return byCertificate(params.get('client_id'), peer.certificate);
    throw new InvalidClientError(
      'expected client authentication (tls_client_auth, client_secret_basic, client_secret_post or private_key_jwt), got none',
    );
  };

  return {
    async authenticate(authorization, params, peer = { address: 'unknown' }) {
      return withCertificate(await authenticate(authorization, params, peer), peer.certificate);
    },
  };
}

/** RFC 6749 §2.3.1: the id and the secret are form-urlencoded before Basic encoding. */
function decodeBasic(authorization: string): { clientId: string; secret: string } {
  const encoded = authorization.slice(6).trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) throw new InvalidClientError('expected Basic credentials in base64');
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw new InvalidClientError('expected Basic credentials as client_id:client_secret');
  try {
    const clientId = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '));
    const secret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' '));
    if (clientId === '' || secret === '')
      throw new InvalidClientError('expected a non-empty client id and secret in Basic credentials');
    return { clientId, secret };
  } catch (error) {
    if (error instanceof InvalidClientError) throw error;
    throw new InvalidClientError('expected form-urlencoded Basic credentials (RFC 6749 §2.3.1)');
  }
}
