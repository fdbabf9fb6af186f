import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { listenOnLoopback } from './net.ts';

/** What a loopback test server saw of one request. */
export interface Recorded {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly rawHeaders: readonly string[];
}

export interface Listening {
  readonly server: Server;
  readonly url: string;
  readonly port: number;
  hits: number;
  readonly seen: Recorded[];
}

/** A request handler for a test server; it may be async (whatever else it returns is ignored, as node:http ignores it). */
export type TestHandler = (req: IncomingMessage, res: ServerResponse) => unknown;

/**
 * The handler as node:http takes it (a listener whose result is ignored). An
 * async handler's rejection stays loud: the response's connection is
 * destroyed and the error is rethrown as an unhandled rejection, which the
 * test runner reports as a failure of the test that was running.
 */
export function handling(handler: TestHandler): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const result = handler(req, res);
    if (result instanceof Promise) {
      void result.catch((error: unknown) => {
        res.destroy();
        throw error;
      });
    }
  };
}

/**
 * A real HTTP server on a free loopback port that records every request;
 * without a handler it answers 200 `{"ok":true}`.
 */
export async function listen(handler?: TestHandler): Promise<Listening> {
  const state = { hits: 0, seen: [] as Recorded[] };
  const server = createServer((req, res) => {
    state.hits++;
    state.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders });
    if (handler !== undefined) return handling(handler)(req, res);
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  await listenOnLoopback(server);
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return Object.assign(state, { server, url: `http://127.0.0.1:${port}`, port });
}

export async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
