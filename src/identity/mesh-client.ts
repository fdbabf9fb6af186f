/**
 * The client side of mesh mTLS: one undici Agent per certificate
 * generation, whose pool for each origin presents this workload's
 * certificate and accepts the server only if its certificate names the
 * SPIFFE ID registered for that origin (X509-SVID §5). A server with a
 * certificate for another service fails the handshake, so no request, and
 * no token, is ever written to it.
 *
 * On rotation a new Agent is built from the new certificate and the old
 * one is closed gracefully: requests already on it finish, new ones take
 * the new certificate. Keep-alive pools and TLS session tickets (undici
 * caches them per origin) keep handshakes off the hot path.
 */
import { DEFAULT_CONNECT_TIMEOUT_MS, KEEP_ALIVE_TIMEOUT_MS } from './config.ts';
import { type ConnectionOptions, createSecureContext, type SecureContext } from 'node:tls';
import { Agent, type buildConnector, Dispatcher, Pool } from 'undici';
import type { Logger } from 'pino';
import { IdentityError } from './errors.ts';
import type { SpiffeId } from './spiffe-id.ts';
import type { Svid } from './svid.ts';
import { clientTlsOptions } from './tls.ts';
import type { WorkloadIdentity } from './workload-identity.ts';

export interface MeshGeneration {
  readonly svid: Svid;
  /** Dispatches over mTLS with this generation's certificate; what a certificate-bound token must travel on. */
  readonly agent: Dispatcher;
  /** node:tls connect options for `origin` with this generation's certificate (the data plane's sockets); one secure context per generation. */
  connectOptions(origin: string): ConnectionOptions;
}

export interface MeshClient {
  /** Declares that `origin` must be served by a certificate naming `expected`. */
  expect(origin: string, expected: SpiffeId): void;
  /** The generation in force, or undefined without a valid identity (callers refuse; nothing falls back to plaintext). */
  current(): MeshGeneration | undefined;
  /** Always dispatches on the current generation: for JWKS and policy fetches that bind nothing. */
  readonly dispatcher: Dispatcher;
  close(): Promise<void>;
}

export interface MeshClientOptions {
  readonly identity: WorkloadIdentity;
  readonly logger: Logger;
  readonly connectTimeoutMs?: number;
  readonly keepAliveTimeoutMs?: number;
}

export function createMeshClient(options: MeshClientOptions): MeshClient {
  const expected = new Map<string, SpiffeId>();
  let generation: MeshGeneration | undefined;
  const retired = new Set<Promise<void>>();

  const build = (svid: Svid): MeshGeneration => {
    let secureContext: SecureContext | undefined;
    const byOrigin = new Map<string, ConnectionOptions>();
    return {
      svid,
      connectOptions(origin) {
        let found = byOrigin.get(origin);
        if (found !== undefined) return found;
        const id = expected.get(origin);
        if (id === undefined)
          throw new IdentityError(
            'BATON_IDENTITY_MISSING',
            `expected a mesh origin with a declared SPIFFE ID, got ${origin}`,
          );
        const tls = clientTlsOptions(svid, id, svid.pem.bundle);
        // Parsing the PEMs once per certificate, not per connection.
        secureContext ??= createSecureContext({ ca: tls.ca, cert: tls.cert, key: tls.key, minVersion: tls.minVersion });
        found = { secureContext, rejectUnauthorized: true, checkServerIdentity: tls.checkServerIdentity };
        byOrigin.set(origin, found);
        return found;
      },
      agent: new Agent({
        factory(origin, opts) {
          const key = typeof origin === 'string' ? origin : origin.origin;
          const id = expected.get(key);
          if (id === undefined)
            return new Pool(origin, {
              ...opts,
              connect: refuse(`expected a mesh origin with a declared SPIFFE ID, got ${key}`),
            });
          return new Pool(origin, {
            ...opts,
            connect: {
              ...clientTlsOptions(svid, id, svid.pem.bundle),
              timeout: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
            },
            keepAliveTimeout: options.keepAliveTimeoutMs ?? KEEP_ALIVE_TIMEOUT_MS,
          });
        },
      }),
    };
  };

  const rotate = (svid: Svid): void => {
    const old = generation;
    generation = build(svid);
    if (old === undefined) return;
    // Graceful: requests already dispatched on the old certificate finish; its idle sockets close.
    const closing = old.agent
      .close()
      .catch((error: unknown) =>
        options.logger.debug(
          { event: 'mesh_agent_close_failed', err: String(error) },
          'old mesh agent did not close cleanly',
        ),
      );
    retired.add(closing);
    void closing.finally(() => retired.delete(closing));
  };

  const first = options.identity.current();
  if (first !== undefined) generation = build(first);
  const unsubscribe = options.identity.onRotate(rotate);
  const noIdentity = new Agent({
    connect: refuse('expected a valid workload identity for mesh mTLS, have none (missing or expired)'),
  });

  const current = (): MeshGeneration | undefined =>
    generation !== undefined && options.identity.current()?.thumbprint === generation.svid.thumbprint
      ? generation
      : undefined;

  const dispatcher = new (class RotatingDispatcher extends Dispatcher {
    override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
      return (current()?.agent ?? noIdentity).dispatch(opts, handler);
    }
    override async close(): Promise<void> {}
    override async destroy(): Promise<void> {}
  })();

  return {
    expect(origin, id) {
      const key = new URL(origin).origin;
      const seen = expected.get(key);
      if (seen !== undefined && seen !== id)
        throw new IdentityError(
          'BATON_IDENTITY_UNMAPPED',
          `expected one SPIFFE ID per mesh origin, got ${seen} and ${id} for ${key}`,
        );
      expected.set(key, id);
    },
    current,
    dispatcher,
    async close() {
      unsubscribe();
      await Promise.all([generation?.agent.close(), noIdentity.close(), ...retired]);
    },
  };
}

function refuse(message: string): buildConnector.connector {
  return (_opts, callback) => callback(new IdentityError('BATON_IDENTITY_MISSING', message), null);
}
