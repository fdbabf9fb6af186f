/**
 * The limits every listening socket of every part needs, whatever protocol
 * it serves (DESIGN.md, "Third round": every listening socket has a timeout
 * in every state and a cap; shutdown ends every socket within the grace
 * period). Written once, attached to any node:net, node:tls, node:http or
 * node:https server:
 *
 * - every socket is tracked from the moment TCP accepts it, before any TLS
 *   handshake and before any HTTP request: the caps count it and shutdown
 *   reaches it (node:http's own connection list knows only sockets that
 *   became HTTP connections, so a socket that never finished a handshake
 *   kept `server.close()` waiting for ever);
 * - `maxConnections` per listener (node refuses the next at accept) and
 *   `maxConnectionsPerPeer` per remote address (closed at once, before a
 *   byte is read);
 * - TLS servers: a failed or timed-out handshake (`handshakeTimeout` on the
 *   server) is reported by node as `tlsClientError` and nothing more; the
 *   socket is destroyed here.
 *
 * A socket that has become a served connection is `mark`ed by its server;
 * `closeUnserved` (draining) destroys the rest, `closeAll` (the grace
 * period is over) every one.
 */
import type { Server, Socket } from 'node:net';

export interface ListenerLimits {
  /** The most connections open at once on this listener, handshakes included. */
  readonly maxConnections: number;
  /** The most connections open at once from one remote address. */
  readonly maxConnectionsPerPeer: number;
  /** Called when a connection is refused by a cap (a metric). */
  readonly onCapped?: (cap: 'listener' | 'peer') => void;
}

export interface SocketGuard {
  /** Sockets open now, handshaking ones included. */
  readonly size: number;
  /** The socket now serves requests (for TLS: its handshake is done); `socket` may be the TLSSocket over an accepted one. */
  mark(socket: Socket): void;
  /** Destroys every socket not yet serving: handshakes in progress, connections that never became HTTP. */
  closeUnserved(): void;
  /** Destroys every socket. */
  closeAll(): void;
}

/** The key of a socket and of the TLSSocket wrapping it: they share their remote end. */
function keyOf(socket: Socket): string {
  return `${socket.remoteAddress ?? ''} ${socket.remotePort ?? 0}`;
}

export function guardSockets(server: Server, limits: ListenerLimits): SocketGuard {
  const sockets = new Map<string, Socket>();
  const served = new Set<string>();
  const perPeer = new Map<string, number>();
  server.maxConnections = limits.maxConnections;
  server.on('drop', () => limits.onCapped?.('listener'));
  server.on('connection', (socket: Socket) => {
    const peer = socket.remoteAddress ?? '';
    const held = (perPeer.get(peer) ?? 0) + 1;
    if (held > limits.maxConnectionsPerPeer) {
      limits.onCapped?.('peer');
      socket.destroy();
      return;
    }
    perPeer.set(peer, held);
    const key = keyOf(socket);
    sockets.set(key, socket);
    socket.once('close', () => {
      sockets.delete(key);
      served.delete(key);
      const left = (perPeer.get(peer) ?? 1) - 1;
      if (left === 0) perPeer.delete(peer);
      else perPeer.set(peer, left);
    });
  });
  // Only TLS servers emit it; a failed or timed-out handshake is reported, not acted on, by node.
  server.on('tlsClientError', (_error: Error, socket: Socket) => socket.destroy());
  return {
    get size() {
      return sockets.size;
    },
    mark(socket) {
      served.add(keyOf(socket));
    },
    closeUnserved() {
      for (const [key, socket] of sockets) if (!served.has(key)) socket.destroy();
    },
    closeAll() {
      for (const socket of sockets.values()) socket.destroy();
    },
  };
}
