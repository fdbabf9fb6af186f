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
 * - HTTP/2 (`h2` limits given): a connection whose first bytes are the
 *   HTTP/2 preface (h2c with prior knowledge), or a TLS connection that
 *   agreed `h2` by ALPN, goes to ./h2-listener.ts; both protocols reach the
 *   same handler as RequestStreams.
 */
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket, type TlsOptions } from 'node:tls';
import { guardSockets, type ListenerLimits } from '../core/socket-guard.ts';
import { ClientConnection, type ConnectionOptions } from './client-connection.ts';
import { createH2Listener, type H2Limits } from './h2-listener.ts';
import type { RequestStream } from './stream.ts';

export interface Http1ServerOptions extends Omit<ConnectionOptions, 'onPreface'>, ListenerLimits {
  /** TLS only: how long a client has to finish its handshake. */
  readonly handshakeTimeoutMs: number;
  /** HTTP/2 on this port too (h2c with prior knowledge; over TLS, ALPN `h2`), with these limits (./h2-listener.ts). */
  readonly h2?: H2Limits;
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

export function createHttp1Server(
  handler: (stream: RequestStream) => void,
  options: Http1ServerOptions,
  tls?: TlsOptions,
): Http1Server {
  const connections = new Set<ClientConnection>();
  const state = { draining: false };
  const h2 =
    options.h2 === undefined ? undefined : createH2Listener(handler, { ...options.h2, refusal: options.refusal });
  const connectionOptions: ConnectionOptions =
    h2 === undefined ? options : { ...options, onPreface: (socket, tunnel) => h2.accept(socket, tunnel) };
  const accept = (socket: Socket): void => {
    guard.mark(socket);
    // TLS: the protocol was agreed in the handshake (ALPN, RFC 7301).
    if (h2 !== undefined && (socket as TLSSocket).alpnProtocol === 'h2') {
      h2.accept(socket);
      return;
    }
    const connection = new ClientConnection(socket, handler, connectionOptions, state);
    connections.add(connection);
    socket.once('close', () => connections.delete(connection));
  };
  const server =
    tls === undefined
      ? createNetServer({ noDelay: true }, accept)
      : createTlsServer(
          {
            ...tls,
            noDelay: true,
            handshakeTimeout: options.handshakeTimeoutMs,
            ...(h2 === undefined ? {} : { ALPNProtocols: ['h2', 'http/1.1'] }),
          },
          (socket: TLSSocket) => accept(socket),
        );
  const guard = guardSockets(server, options);
  return {
    server,
    connections: () => guard.size,
    drain() {
      state.draining = true;
      h2?.drain();
      guard.closeUnserved();
      for (const connection of connections) connection.closeIfIdle();
    },
    closeAll() {
      h2?.closeAll();
      guard.closeAll();
      for (const connection of connections) connection.destroy();
    },
  };
}
