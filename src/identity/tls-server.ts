/**
 * The HTTP(S) listener of the control-plane parts (STS, policy server,
 * injector, and every part's plaintext admin port), written once (#25: the
 * TLS server that follows certificate rotation was written four times):
 *
 * - TLS: the part's certificate, swapped in place on rotation (connections
 *   already open, long polls among them, go on with the old context); a
 *   handshake must finish within `handshakeTimeoutMs`; where client
 *   certificates are optional, one that is presented must verify.
 * - Every socket is guarded from accept (src/core/socket-guard.ts): caps
 *   per listener and per peer, handshakes that fail or time out destroyed.
 * - `drain()` starts a bounded shutdown: sockets that never carried a
 *   request go at once, idle kept-alive ones too, requests in flight get
 *   `shutdownGraceMs`, then every socket is cut. (A socket that never
 *   finished its handshake is invisible to node:http's own connection list
 *   and held `server.close()` open for ever.)
 *
 * The sidecar's data plane has its own listener (src/dataplane/server.ts)
 * on the same socket guard.
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { SecureContextOptions, TlsOptions } from 'node:tls';
import { guardSockets, type ListenerLimits, type SocketGuard } from '../core/socket-guard.ts';
import { refuseUnverifiedPeers } from './tls.ts';

/** The control-plane parts' listener limits: one named home for them. */
export const CONTROL_PLANE_LISTENER = Object.freeze({
  maxConnections: 4_096,
  maxConnectionsPerPeer: 1_024,
  /** How long a client has to finish its TLS handshake. */
  handshakeTimeoutMs: 10_000,
  /** How long requests in flight may take once shutdown has begun. */
  shutdownGraceMs: 10_000,
});

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

export interface GuardedListener<S extends HttpServer | HttpsServer> {
  readonly server: S;
  readonly guard: SocketGuard;
  /** Shutdown has begun: sockets without a request go now; the rest are cut after the grace period. */
  drain(): void;
  /** Stops following certificate rotations and clears the grace timer (after the server closed). */
  dispose(): void;
}

export interface TlsListenerOptions {
  /** The server's TLS settings now (certificate, key, client-certificate policy). */
  readonly tls: TlsOptions;
  /** Subscribes to rotations: `apply` takes the next secure context; returns the unsubscribe. */
  readonly followRotation?: (apply: (next: SecureContextOptions) => void) => () => void;
  /** Client certificates optional: a presented one must still verify, or the connection is cut after the handshake. */
  readonly verifyPresentedCertificates?: boolean;
  readonly limits?: Partial<ListenerLimits>;
}

export function createTlsListener(handler: RequestListener, options: TlsListenerOptions): GuardedListener<HttpsServer> {
  const server = createHttpsServer(
    { ...options.tls, handshakeTimeout: CONTROL_PLANE_LISTENER.handshakeTimeoutMs },
    handler,
  );
  if (options.verifyPresentedCertificates === true) refuseUnverifiedPeers(server);
  const stopRotating = options.followRotation?.((next) => server.setSecureContext(next));
  return guarded(server, options.limits, stopRotating);
}

export function createPlainListener(
  handler: RequestListener,
  limits?: Partial<ListenerLimits>,
): GuardedListener<HttpServer> {
  return guarded(createHttpServer(handler), limits);
}

function guarded<S extends HttpServer | HttpsServer>(
  server: S,
  limits: Partial<ListenerLimits> | undefined,
  stopRotating?: () => void,
): GuardedListener<S> {
  const guard = guardSockets(server, { ...CONTROL_PLANE_LISTENER, ...limits });
  // A socket that has carried a request is the HTTP server's to close (idle) or to finish (in flight).
  server.on('request', (req: IncomingMessage) => guard.mark(req.socket));
  let deadline: NodeJS.Timeout | undefined;
  return {
    server,
    guard,
    drain() {
      guard.closeUnserved();
      server.closeIdleConnections();
      deadline ??= setTimeout(() => {
        server.closeAllConnections();
        guard.closeAll();
      }, CONTROL_PLANE_LISTENER.shutdownGraceMs);
      deadline.unref();
    },
    dispose() {
      clearTimeout(deadline);
      stopRotating?.();
    },
  };
}
