/**
 * A data-plane listener: a node:net (or node:tls) server whose connections
 * are ./client-connection.ts, with the limits every listening socket needs
 * whatever state a connection is in (DESIGN.md, "Third round": every
 * listening socket has a timeout in every state and a cap; shutdown ends
 * every socket within the grace period).
 *
 * - Every socket is tracked from the moment TCP accepts it, before any TLS
 *   handshake: the caps count it, and `closeAll` ends it.
 * - Caps: `maxConnections` per listener (node refuses the next at accept),
 *   `maxConnectionsPerPeer` per remote address (a connection over it is
 *   closed at once, before a byte is read).
 * - TLS: a handshake must finish within `handshakeTimeoutMs`. Sockets are
 *   not half-open: a client's FIN before (or without) a request ends the
 *   connection. (Half-open TLS sockets once sat in CLOSE-WAIT for ever after
 *   a bare connect and FIN, one descriptor each, and held shutdown open.)
 * - Idle, head, body and answer states have their timeouts in
 *   ./client-connection.ts and the handler.
 */
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket, type TlsOptions } from 'node:tls';
import { ClientConnection, type ConnectionOptions } from './client-connection.ts';
import type { Exchange } from './exchange.ts';

export interface Http1ServerOptions extends ConnectionOptions {
  /** The most connections open at once on this listener (node's `maxConnections`). */
  readonly maxConnections: number;
  /** The most connections open at once from one remote address. */
  readonly maxConnectionsPerPeer: number;
  /** TLS only: how long a client has to finish its handshake. */
  readonly handshakeTimeoutMs: number;
  /** Called when a connection is refused by a cap (a metric). */
  readonly onCapped?: (cap: 'listener' | 'peer') => void;
}

export interface Http1Server {
  readonly server: Server;
  /** Connections open now, handshaking ones included. */
  connections(): number;
  /** Closes connections with no request in hand, handshakes included (shutdown). */
  closeIdle(): void;
  /** Cuts every connection (the grace period is over). */
  closeAll(): void;
}

export function createHttp1Server(handler: (exchange: Exchange) => void, options: Http1ServerOptions, tls?: TlsOptions): Http1Server {
  // Keyed by remote address and port: the accepted socket and, once it speaks HTTP, its connection (for TLS a
  // TLSSocket wrapping the accepted one, with the same remote end).
  const sockets = new Map<string, Socket>();
  const connections = new Map<string, ClientConnection>();
  const perPeer = new Map<string, number>();
  const keyOf = (socket: Socket): string => `${socket.remoteAddress ?? ''} ${socket.remotePort ?? 0}`;

  const accept = (socket: Socket): void => {
    const key = keyOf(socket);
    const connection = new ClientConnection(socket, handler, options);
    connections.set(key, connection);
    socket.once('close', () => connections.delete(key));
  };
  const server =
    tls === undefined
      ? createNetServer({ noDelay: true }, accept)
      : createTlsServer({ ...tls, noDelay: true, handshakeTimeout: options.handshakeTimeoutMs }, (socket: TLSSocket) => accept(socket));
  server.maxConnections = options.maxConnections;
  server.on('drop', () => options.onCapped?.('listener'));
  server.on('connection', (socket: Socket) => {
    const peer = socket.remoteAddress ?? '';
    const held = (perPeer.get(peer) ?? 0) + 1;
    if (held > options.maxConnectionsPerPeer) {
      options.onCapped?.('peer');
      socket.destroy();
      return;
    }
    perPeer.set(peer, held);
    const key = keyOf(socket);
    sockets.set(key, socket);
    socket.once('close', () => {
      sockets.delete(key);
      const left = (perPeer.get(peer) ?? 1) - 1;
      if (left === 0) perPeer.delete(peer);
      else perPeer.set(peer, left);
    });
  });
  // A failed or timed-out handshake (ERR_TLS_HANDSHAKE_TIMEOUT): node only reports it; the connection is ended here.
  if (tls !== undefined) server.on('tlsClientError', (_error: Error, socket: TLSSocket) => socket.destroy());

  return {
    server,
    connections: () => sockets.size,
    closeIdle() {
      for (const [key, socket] of sockets) {
        const connection = connections.get(key);
        if (connection === undefined) socket.destroy();
        else connection.closeIfIdle();
      }
    },
    closeAll() {
      for (const socket of sockets.values()) socket.destroy();
      for (const connection of connections.values()) connection.destroy();
    },
  };
}
