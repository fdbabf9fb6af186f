/**
 * The registered clients, compiled once from config: each client is a
 * service of the mesh, authenticated by a secret (plain or scrypt hash) or
 * by its own keys (`private_key_jwt`, RFC 7523), optionally bound to a
 * Kubernetes service account.
 */
import type { Dispatcher } from 'undici';
import type { ServiceMap } from '../identity/service-map.ts';
import { parseSpiffeId, type SpiffeId } from '../identity/spiffe-id.ts';
import type { Logger } from 'pino';
import type { KeySourceConfig } from '../token/config.ts';
import { createLocalKeySource, createRemoteKeySource, type KeySource } from '../token/key-source.ts';
import type { StsClientConfig } from './config.ts';
import { hashedSecretVerifier, plainSecretVerifier, type SecretVerifier } from './secret-hash.ts';

export interface RegisteredClient {
  readonly id: string;
  readonly secret: SecretVerifier | undefined;
  /** The client's public keys, for `private_key_jwt` and self-signed actor tokens. */
  readonly keys: KeySource | undefined;
  /** What `client_credentials` may grant it. */
  readonly scopes: ReadonlySet<string>;
  /** `namespace/name` of the Kubernetes service account it runs as. */
  readonly serviceAccount: string | undefined;
  /** RFC 8705 §2.1.2 `tls_client_certificate_san_uri`: registered for tls_client_auth with this SPIFFE ID. */
  readonly tlsClientAuthSanUri: SpiffeId | undefined;
  /** The SPIFFE ID any certificate this client presents must name (mtls mode); undefined in plaintext mode. */
  readonly certificateId: SpiffeId | undefined;
}

export interface ClientRegistry {
  get(id: string): RegisteredClient | undefined;
  close(): void;
}

export interface ClientRegistryOptions {
  readonly dispatcher?: Dispatcher | undefined;
  readonly logger: Logger;
  readonly now?: () => number;
  /** mtls mode: the SPIFFE rule, giving each client's certificate ID. */
  readonly map?: ServiceMap | undefined;
  /** How clients' JWK Sets (jwksUri) are fetched and kept; default the schema's (src/token/config.ts). */
  readonly keySource?: KeySourceConfig;
}

export function createClientRegistry(
  clients: readonly StsClientConfig[],
  options: ClientRegistryOptions,
): ClientRegistry {
  const byId = new Map<string, RegisteredClient>();
  for (const client of clients) {
    const secret =
      client.secret !== undefined
        ? plainSecretVerifier(client.secret)
        : client.secretHash !== undefined
          ? hashedSecretVerifier(client.secretHash)
          : undefined;
    const keys =
      client.jwks !== undefined
        ? createLocalKeySource(client.jwks as Parameters<typeof createLocalKeySource>[0])
        : client.jwksUri !== undefined
          ? createRemoteKeySource({
              issuer: client.id,
              jwksUri: client.jwksUri,
              dispatcher: options.dispatcher,
              ...options.keySource,
              logger: options.logger,
              ...(options.now === undefined ? {} : { now: options.now }),
            })
          : undefined;
    const explicit =
      client.tlsClientAuthSanUri === undefined ? undefined : parseSpiffeId(client.tlsClientAuthSanUri).id;
    const certificateId = explicit ?? options.map?.idOf(client.id);
    const tlsClientAuthSanUri = explicit ?? (client.tlsClientAuth === true ? certificateId : undefined);
    byId.set(
      client.id,
      Object.freeze({
        id: client.id,
        secret,
        keys,
        scopes: new Set(client.scopes ?? []),
        serviceAccount: client.serviceAccount,
        tlsClientAuthSanUri,
        certificateId,
      }),
    );
  }
  return {
    get: (id) => byId.get(id),
    close() {
      for (const client of byId.values()) client.keys?.close();
    },
  };
}
