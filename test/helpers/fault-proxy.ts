import { createConnection, createServer, type Server, type Socket } from 'node:net';

/** What the proxy does to new connections: pass, delay, reset at once, or accept and never answer. */
export type FaultMode =
  | { readonly kind: 'pass' }
  | { readonly kind: 'latency'; readonly ms: number }
  | { readonly kind: 'reset' }
  | { readonly kind: 'blackhole' };

export interface FaultProxy {
  readonly port: number;
  readonly url: string;
  /** Connections accepted so far. */
  readonly connections: () => number;
  /** Changes the mode for new connections and, with `cut`, resets the open ones. */
  set(mode: FaultMode, options?: { cut?: boolean }): void;
  close(): Promise<void>;
}

/**
 * Ends a connection with a TCP reset. Not on a socket whose write side is
 * shutting down (end() called, its FIN not yet sent, as when the other leg of
 * the pipe ended first): there libuv's uv_tcp_close_reset refuses with
 * EINVAL, and Node 24's resetAndDestroy then drops the socket's handle without
 * closing it. Nothing keeps the loop alive, but the process never exits: it
 * spins in its exit cleanup waiting for that handle (this is what kept
 * test/faults/app-and-shutdown.test.ts from exiting without --test-force-exit).
 * Such a socket is already half-closed; it is destroyed plainly.
 */
function cut(socket: Socket): void {
  if (socket.writableEnded) socket.destroy();
  else socket.resetAndDestroy();
}

/**
 * A TCP proxy on loopback for fault tests: it sits between a baton process
 * and one of its dependencies (STS, JWKS, policy server, Redis, app) and
 * injects latency, connection resets or a blackhole on demand.
 */
export async function startFaultProxy(target: { host?: string; port: number }, port = 0): Promise<FaultProxy> {
  let mode: FaultMode = { kind: 'pass' };
  let accepted = 0;
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    accepted++;
    open.add(client);
    client.on('close', () => open.delete(client));
    client.on('error', () => undefined);
    const current = mode;
    if (current.kind === 'reset') {
      cut(client);
      return;
    }
    if (current.kind === 'blackhole') {
      client.resume();
      return;
    }
    client.pause();
    const connect = (): void => {
      if (client.destroyed) return;
      const upstream = createConnection({ host: target.host ?? '127.0.0.1', port: target.port });
      open.add(upstream);
      upstream.on('close', () => {
        open.delete(upstream);
        client.destroy();
      });
      upstream.on('error', () => cut(client));
      client.on('close', () => upstream.destroy());
      upstream.on('connect', () => {
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
    };
    if (current.kind === 'latency') setTimeout(connect, current.ms);
    else connect();
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const address = server.address();
  const bound = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    port: bound,
    url: `http://127.0.0.1:${bound}`,
    connections: () => accepted,
    set(next, options = {}) {
      mode = next;
      if (options.cut === true) for (const socket of open) cut(socket);
    },
    close: () =>
      new Promise((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
