/**
 * The three demo services. They hold no token: each sees only the identity
 * headers its sidecar adds, and calls onwards through its sidecar's outbound
 * port with the `baton-context` handle it was given (DESIGN.md, "The flow").
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { request } from 'undici';

export type DemoServiceName = 'gateway' | 'orders' | 'payments';

/** What one hop saw, as the app reports it. */
export interface HopView {
  readonly service: string;
  readonly subject: string | undefined;
  /** The identity provider that authenticated the subject (the STS for a service identity). */
  readonly subjectIssuer: string | undefined;
  /** `user` or `service`. */
  readonly subjectType: string | undefined;
  readonly caller: string | undefined;
  readonly chain: string | undefined;
  readonly scope: string | undefined;
  readonly txn: string | undefined;
  /** The baton-request id: the same at every hop of one request. */
  readonly request: string | undefined;
  readonly sawBearerToken: boolean;
  readonly sawContextHandle: boolean;
  readonly downstream?: DownstreamResult;
}

export interface DownstreamResult {
  readonly target: string;
  readonly status: number;
  readonly body: unknown;
}

/** Which call each route makes next: the shop's call graph, and one call the policy forbids. */
const ROUTES: Readonly<Record<DemoServiceName, Readonly<Record<string, { target: string; method: string; path: string } | null>>>> = {
  gateway: {
    'POST /checkout': { target: 'orders', method: 'POST', path: '/orders' },
    // Not in the call graph: the gateway may not charge a card itself.
    'POST /direct-charge': { target: 'payments', method: 'POST', path: '/charges' },
  },
  orders: {
    'POST /orders': { target: 'payments', method: 'POST', path: '/charges' },
    'GET /orders': null,
  },
  payments: {
    'POST /charges': null,
    // The benchmarks' edge (bench/fixtures/bench.callgraph.yaml): a leaf that answers 200, no downstream call.
    'GET /bench': null,
  },
};

export interface DemoApp {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The probe paths every baton part answers, answered by the demo apps too, so
 * that a health check reads the same everywhere (docker-compose.yml points
 * each app's at /readyz). A demo app is ready once it listens.
 */
const HEALTH_PATHS: ReadonlySet<string> = new Set(['/livez', '/readyz']);

export async function startDemoApp(options: { name: DemoServiceName; port?: number; host?: string; outbound: string }): Promise<DemoApp> {
  const routes = ROUTES[options.name];
  const server: Server = createServer((req, res) => {
    if ((req.method === 'GET' || req.method === 'HEAD') && HEALTH_PATHS.has((req.url ?? '/').split('?')[0] ?? '/')) {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
      res.end('ok\n');
      return;
    }
    void handle(req).then(
      (view) => {
        // A refused downstream call fails this request too, with the same status, as a real app would:
        // `curl -i` shows the 403 on the status line, and the body says which hop refused and why.
        const failed = view.downstream !== undefined && view.downstream.status >= 400 ? view.downstream.status : 200;
        res.writeHead(failed, { 'content-type': 'application/json' });
        res.end(JSON.stringify(view));
      },
      (error: unknown) => {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ service: options.name, error: error instanceof Error ? error.message : String(error) }));
      },
    );
  });

  async function handle(req: IncomingMessage): Promise<HopView> {
    for await (const _chunk of req); // drain the body; the demo apps ignore it
    const route = `${req.method} ${(req.url ?? '/').split('?')[0]}`;
    const next = routes[route];
    const context = header(req, 'baton-context');
    const view: HopView = {
      service: options.name,
      subject: header(req, 'baton-subject'),
      subjectIssuer: header(req, 'baton-subject-issuer'),
      subjectType: header(req, 'baton-subject-type'),
      caller: header(req, 'baton-caller'),
      chain: header(req, 'baton-chain'),
      scope: header(req, 'baton-scope'),
      txn: header(req, 'baton-txn'),
      request: header(req, 'baton-request'),
      sawBearerToken: req.headers.authorization !== undefined,
      sawContextHandle: context !== undefined,
    };
    if (next === undefined) return { ...view, downstream: { target: '', status: 404, body: `no route ${route}` } };
    if (next === null) return view;
    // Origin-form with Host naming the service: the sidecar maps the name to an upstream.
    const response = await request(`${options.outbound}${next.path}`, {
      method: next.method as 'POST',
      // Like any traced app, pass the W3C trace context on, so the whole chain is one trace.
      headers: { host: next.target, 'content-type': 'application/json', ...(context === undefined ? {} : { 'baton-context': context }), ...traceContext(req) },
      body: JSON.stringify({ from: options.name }),
    });
    const text = await response.body.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // a non-JSON answer is shown as text
    }
    return { ...view, downstream: { target: next.target, status: response.statusCode, body } };
  }

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    port,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

function traceContext(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ['traceparent', 'tracestate']) {
    const value = header(req, name);
    if (value !== undefined) out[name] = value;
  }
  return out;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}
