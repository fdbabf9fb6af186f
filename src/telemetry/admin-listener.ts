/**
 * The plaintext admin port of a part whose main port speaks TLS (the STS and
 * the policy server in mtls mode): `/livez`, `/readyz` and `/metrics`,
 * answered by the part's own routes (through `inject`, so both ports give
 * the same answer from one handler), and nothing else: no token, no policy,
 * no key travels on it. It exists because Prometheus cannot verify a
 * certificate whose only name is a SPIFFE URI SAN without
 * `insecure_skip_verify`, and a scraper should not need a mesh identity to
 * read counters. Like the sidecar's admin port, it is opened in Kubernetes
 * to the scraper only, by NetworkPolicy (docs/kubernetes.md).
 */
import type { AddressInfo } from 'node:net';
import { createPlainListener } from '../identity/tls-server.ts';
import type { FastifyInstance } from 'fastify';

const PATHS: ReadonlySet<string> = new Set(['/livez', '/readyz', '/metrics']);
/** Headers of the part's answer that the admin port passes on. */
const PASSED_HEADERS = ['content-type', 'cache-control', 'retry-after'] as const;

export interface AdminListener {
  /** Resolves with the bound URL (`http://host:port`). */
  listen(address: { readonly host: string; readonly port: number }): Promise<string>;
  close(): Promise<void>;
}

type Injectable = Pick<FastifyInstance, 'inject'>;

export function createAdminListener(app: Injectable): AdminListener {
  // Guarded like every listener (src/core/socket-guard.ts): caps, and shutdown reaches sockets that never sent a request.
  const listener = createPlainListener((req, res) => {
    req.resume();
    const path = (req.url ?? '/').split('?', 1)[0] as string;
    const send = (status: number, body: string, headers: Record<string, string> = {}): void => {
      res.writeHead(status, {
        'content-type': 'text/plain; charset=utf-8',
        ...headers,
        'content-length': String(Buffer.byteLength(body)),
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed\n', { allow: 'GET, HEAD' });
    if (!PATHS.has(path)) return send(404, 'not found\n');
    app.inject({ method: 'GET', url: path }).then(
      (answer) => {
        const headers: Record<string, string> = {};
        for (const name of PASSED_HEADERS) {
          const value = answer.headers[name];
          if (typeof value === 'string') headers[name] = value;
        }
        send(answer.statusCode, answer.body, headers);
      },
      () => send(503, 'not ready\n'),
    );
  });
  const { server } = listener;
  // Scrapes and probes are short: a slow or silent client does not hold a socket for long.
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  return {
    listen: ({ host, port }) =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const bound = server.address() as AddressInfo;
          resolve(`http://${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`);
        });
      }),
    close: () =>
      new Promise((resolve) => {
        if (!server.listening) return resolve();
        server.closeAllConnections();
        listener.guard.closeAll();
        listener.dispose();
        server.close(() => resolve());
      }),
  };
}
