/**
 * A data-plane listener: a node:net (or node:tls) server whose connections
 * are ./client-connection.ts, with the limits every listening socket needs
 * whatever state a connection is in (DESIGN.md, "Third round": every
 * listening socket has a timeout in every state and a cap; shutdown ends
 * every socket within the grace period).
 *
 * - Every socket is tracked from the moment TCP accepts it, before any TLS
 *   handshake, with caps per listener and per peer (src/core/socket-guard.ts).
 * - TLS: a handshake must finish within `handshakeTimeoutMs`. Sockets are
 *   not half-open: a client's FIN before (or without) a request ends the
 *   connection. (Half-open TLS sockets once sat in CLOSE-WAIT for ever after
 *   a bare connect and FIN, one descriptor each, and held shutdown open.)
 * - Idle, head, body and answer states have their timeouts in
 *   ./client-connection.ts and the handler.
 */
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket, type TlsOptions } from 'node:tls';
import { guardSockets, type ListenerLimits } from '../core/socket-guard.ts';
import { ClientConnection, type ConnectionOptions } from './client-connection.ts';
import type { HttpStream } from './stream.ts';

export interface Http1ServerOptions extends ConnectionOptions, ListenerLimits {
  /** TLS only: how long a client has to finish its handshake. */
  readonly handshakeTimeoutMs: number;
}

export interface Http1Server {
  readonly server: Server;
  /** Connections open now, handshaking ones included. */
  connections(): number;
  /** Shutdown: connections with no request in hand close now, handshakes included; the rest close after their response. */
  drain(): void;
  /** Cuts every connection (the grace period is over). */
  closeAll(): void;
}

export function createHttp1Server(handler: (stream: HttpStream) => void, options: Http1ServerOptions, tls?: TlsOptions): Http1Server {
  const connections = new Set<ClientConnection>();
  const state = { draining: false };
  const accept = (socket: Socket): void => {
    guard.mark(socket);
    const connection = new ClientConnection(socket, handler, options, state);
    connections.add(connection);
    socket.once('close', () => connections.delete(connection));
  };
  const server =
    tls === undefined
      ? createNetServer({ noDelay: true }, accept)
      : createTlsServer({ ...tls, noDelay: true, handshakeTimeout: options.handshakeTimeoutMs }, (socket: TLSSocket) => accept(socket));
  const guard = guardSockets(server, options);
  return {
    server,
    connections: () => guard.size,
    drain() {
      state.draining = true;
      guard.closeUnserved();
      for (const connection of connections) connection.closeIfIdle();
    },
    closeAll() {
      guard.closeAll();
      for (const connection of connections) connection.destroy();
    },
  };
}
