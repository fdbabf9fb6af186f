/**
 * Who is calling the token endpoint. The authenticated client is the actor
 * every issued token names: nothing in the request body can choose it.
 * Methods: `client_secret_basic` (RFC 6749 §2.3.1), `client_secret_post`
 * (ibid.), `private_key_jwt` (RFC 7523 §2.2, OpenID Connect Core §9).
 */
import { JWT_BEARER_ASSERTION_TYPE } from '../core/token-types.ts';
import type { AuthThrottle } from './auth-throttle.ts';
import type { ClientRegistry, RegisteredClient } from './clients.ts';
import type { TokenRequestParams } from './form.ts';
import { AssertionError, peekIssuerAndSubject, verifyClientSignedJwt } from './jwt-assertion.ts';
import { InvalidClientError, MalformedRequestError, UpstreamKeysUnavailableError } from './oauth-errors.ts';
import type { ReplayStore } from './replay-store.ts';
import { plainSecretVerifier } from './secret-hash.ts';

export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
export const CLIENT_AUTH_METHODS: readonly ClientAuthMethod[] = ['client_secret_basic', 'client_secret_post', 'private_key_jwt'];

export interface AuthenticatedClient {
  readonly client: RegisteredClient;
  readonly method: ClientAuthMethod;
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

export interface ClientAuthenticator {
  /** `peer` is the caller's address, for the per-peer failure limit. */
  authenticate(authorization: string | undefined, params: TokenRequestParams, peer?: string): Promise<AuthenticatedClient>;
}

// Spent on unknown client ids so that a probe cannot tell them from a wrong secret by timing.
const DECOY = plainSecretVerifier('baton-sts-decoy-secret-never-matches');

export function createClientAuthenticator(options: ClientAuthenticatorOptions): ClientAuthenticator {
  const audiences = [options.tokenEndpoint, options.issuer];

  const { throttle } = options;

  const bySecret = async (clientId: string, secret: string, method: ClientAuthMethod, peer: string): Promise<AuthenticatedClient> => {
    const client = options.registry.get(clientId);
    const verifier = client?.secret ?? DECOY;
    // A secret this process has verified before costs an HMAC compare and is never throttled.
    if (client?.secret !== undefined && verifier.known(secret)) return { client, method };
    throttle?.admit(clientId, peer);
    const ok = verifier.costly && throttle !== undefined ? await throttle.costly(() => verifier.verify(secret)) : await verifier.verify(secret);
    if (client === undefined || client.secret === undefined || !ok) {
      throttle?.failed(clientId, peer);
      throw new InvalidClientError('expected a registered client id with its secret, got an unknown client or a wrong secret');
    }
    return { client, method };
  };

  const byAssertion = async (assertion: string, bodyClientId: string | undefined, peer: string): Promise<AuthenticatedClient> => {
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

  const verifyAssertion = async (assertion: string, clientId: string | undefined, bodyClientId: string | undefined): Promise<AuthenticatedClient> => {
    const client = clientId === undefined ? undefined : options.registry.get(clientId);
    if (client === undefined || client.keys === undefined) {
      throw new InvalidClientError('expected a client assertion from a registered client with keys, got an unknown client');
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
        if (error.failure === 'keys_unavailable') throw new UpstreamKeysUnavailableError(`client assertion: ${error.message}`, { cause: error });
        throw new InvalidClientError(`client assertion: ${error.message}`, { cause: error });
      }
      throw error;
    }
    return { client, method: 'private_key_jwt' };
  };

  return {
    async authenticate(authorization, params, peer = 'unknown') {
      const basic = authorization !== undefined && /^basic /i.test(authorization) ? decodeBasic(authorization) : undefined;
      const postedSecret = params.get('client_secret');
      const assertionType = params.get('client_assertion_type');
      const assertion = params.get('client_assertion');
      const used = [basic !== undefined, postedSecret !== undefined, assertion !== undefined || assertionType !== undefined].filter(Boolean).length;
      // RFC 6749 §2.3: the client MUST NOT use more than one authentication method in each request.
      if (used > 1) throw new MalformedRequestError('expected one client authentication method, got several');
      if (basic !== undefined) {
        const bodyClientId = params.get('client_id');
        if (bodyClientId !== undefined && bodyClientId !== basic.clientId) {
          throw new InvalidClientError('expected client_id to match the Basic credentials, got a different client');
        }
        return await bySecret(basic.clientId, basic.secret, 'client_secret_basic', peer);
      }
      if (postedSecret !== undefined) {
        const clientId = params.get('client_id');
        if (clientId === undefined) throw new InvalidClientError('expected client_id with client_secret, got none');
        return await bySecret(clientId, postedSecret, 'client_secret_post', peer);
      }
      if (assertion !== undefined || assertionType !== undefined) {
        if (assertionType !== JWT_BEARER_ASSERTION_TYPE) {
          throw new InvalidClientError(`expected client_assertion_type ${JWT_BEARER_ASSERTION_TYPE} (RFC 7523 §2.2)`);
        }
        if (assertion === undefined) throw new InvalidClientError('expected a client_assertion, got none');
        return await byAssertion(assertion, params.get('client_id'), peer);
      }
      throw new InvalidClientError('expected client authentication (client_secret_basic, client_secret_post or private_key_jwt), got none');
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
    if (clientId === '' || secret === '') throw new InvalidClientError('expected a non-empty client id and secret in Basic credentials');
    return { clientId, secret };
  } catch (error) {
    if (error instanceof InvalidClientError) throw error;
    throw new InvalidClientError('expected form-urlencoded Basic credentials (RFC 6749 §2.3.1)');
  }
}
