/**
 * The upstream side of the socket data plane: forwards one HttpStream to one
 * origin (./forward-call.ts) on a kept-alive connection
 * (./upstream-connection.ts) taken from this pool.
 *
 * Connections are pooled per origin (and, for mTLS, per certificate
 * generation), last in first out, so a client connection's requests keep
 * landing on the same upstream connection while load is steady. A
 * connection comes back only from a call whose response ended exactly at
 * the end of the bytes read, after the whole request was sent, with the
 * server keeping it alive; any other is closed (./forward-call.ts).
 */
import type { HttpStream } from './stream.ts';
import { connectOrigin, ForwardCall, type ForwardSpec, type Pool } from './forward-call.ts';
import { UpstreamConnection } from './upstream-connection.ts';

export interface UpstreamOptions {
  readonly connectTimeoutMs: number;
  /** How long an idle kept-alive connection is kept. */
  readonly keepAliveTimeoutMs: number;
  /** The most bytes a response head may hold. */
  readonly maxHeadBytes: number;
  /** Idle connections kept per origin; more are closed as they come back. */
  readonly maxIdlePerOrigin: number;
  /** Called each time an idempotent request is sent again on a fresh connection (a metric). */
  readonly onRetry?: () => void;
}

export interface Upstreams {
  /** Resolves with the status once the response is written (499 when the client went first); rejects only before it started. */
  forward(stream: HttpStream, spec: ForwardSpec): Promise<number>;
  close(): void;
}

// TLS session tickets kept, one per origin and certificate generation.
const MAX_SESSIONS = 1024;

export function createUpstreams(options: UpstreamOptions): Upstreams {
  const idle = new Map<string, UpstreamConnection[]>();
  const sessions = new Map<string, Buffer>();
  const open = new Set<UpstreamConnection>();

  const forget = (connection: UpstreamConnection): void => {
    open.delete(connection);
    const list = idle.get(connection.key);
    const at = list?.indexOf(connection) ?? -1;
    if (at !== -1) list?.splice(at, 1);
    // A retired certificate generation's key goes with its last connection.
    if (list?.length === 0) idle.delete(connection.key);
  };

  const pool: Pool = {
    onRetry: options.onRetry,
    release(connection) {
      let list = idle.get(connection.key);
      if (list === undefined) idle.set(connection.key, (list = []));
      if (list.length >= options.maxIdlePerOrigin) {
        connection.socket.destroy();
        return;
      }
      connection.idle(options.keepAliveTimeoutMs);
      list.push(connection);
    },
    connect(origin) {
      const socket = connectOrigin(origin, { session: sessions.get(origin.key) });
      if (origin.tls !== undefined) {
        socket.setNoDelay(true);
        // TLS 1.3 tickets: the next connection to this origin resumes instead of a full handshake.
        socket.on('session', (session: Buffer) => {
          sessions.delete(origin.key);
          sessions.set(origin.key, session);
          // Keys carry the certificate generation: rotations add keys, so the oldest go (Map order is insertion order).
          if (sessions.size > MAX_SESSIONS) sessions.delete(sessions.keys().next().value as string);
        });
      }
      const connection = new UpstreamConnection(socket, origin.key, origin.tls !== undefined, options, forget);
      open.add(connection);
      return connection;
    },
    take(key) {
      const list = idle.get(key);
      while (list !== undefined && list.length > 0) {
        const connection = list.pop() as UpstreamConnection;
        if (connection.usable()) return connection;
        connection.socket.destroy();
      }
      return undefined;
    },
  };

  return {
    forward(stream, spec) {
      return new Promise<number>((resolve, reject) => new ForwardCall(stream, spec, pool, resolve, reject).start());
    },
    close() {
      for (const connection of open) connection.socket.destroy();
      idle.clear();
    },
  };
}
