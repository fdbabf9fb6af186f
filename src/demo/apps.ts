/**
 * The three demo services. They hold no token: each sees only the identity
 * headers its sidecar adds, and calls onwards through its sidecar's outbound
 * port with the `baton-context` handle it was given (DESIGN.md, "The flow").
 *
 * Two ways to call, as apps do:
 *
 * - HTTP with Node's own `fetch` and nothing else: `http://orders/orders`,
 *   the sidecar reached as the proxy the environment names
 *   (`NODE_USE_ENV_PROXY=1`, `HTTP_PROXY`: what the injector's
 *   `baton.dev/http-proxy` sets, what the demo mesh and compose set);
 * - gRPC with @grpc/grpc-js: orders charges payments by calling
 *   `shop.v1.Payments/Charge` on the outbound port with `payments` as the
 *   channel's authority (docs/clients.md, "gRPC"). Payments answers gRPC and
 *   HTTP/1.1 on one port, telling them apart by the HTTP/2 preface. The
 *   messages are JSON (a demo needs no .proto): grpc-js takes any codec,
 *   and the sidecars never read a message.
 *
 * Node.js reads NODE_USE_ENV_PROXY for fetch from 24.0 and 22.21; on an older
 * 22 (the package runs on 22.18 and later) `baton demo app` installs undici's
 * EnvHttpProxyAgent, which reads the same variables, so the demo is the same
 * on every Node.js that engines admits (test/package/pack.test.ts runs it on
 * the oldest).
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createH2Server, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { createServer as createNetServer, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
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
  /** How this hop was called: HTTP (fetch), or a gRPC call. */
  readonly protocol: 'http' | 'grpc';
  readonly downstream?: DownstreamResult;
}

export interface DownstreamResult {
  readonly target: string;
  readonly status: number;
  readonly body: unknown;
}

/** The demo's one gRPC method. */
const CHARGE_PATH = '/shop.v1.Payments/Charge';
/** The same charge over HTTP (`--charge http`). */
const HTTP_CHARGE_PATH = '/charges';

type NextCall = { readonly target: string; readonly method: string; readonly path: string; readonly grpc?: true };

/** Which call each route makes next: the shop's call graph, and one call the policy forbids. */
const ROUTES: Readonly<Record<DemoServiceName, Readonly<Record<string, NextCall | null>>>> = {
  gateway: {
    'POST /checkout': { target: 'orders', method: 'POST', path: '/orders' },
    // Not in the call graph: the gateway may not charge a card itself.
    'POST /direct-charge': { target: 'payments', method: 'POST', path: '/charges' },
  },
  orders: {
    // The one gRPC hop of the demo.
    'POST /orders': { target: 'payments', method: 'POST', path: CHARGE_PATH, grpc: true },
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

/** Whether this Node.js's fetch honours NODE_USE_ENV_PROXY=1 (added in 24.0.0 and 22.21.0). */
export function fetchReadsEnvProxy(version: string = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major >= 24 || (major === 22 && minor >= 21);
}

export interface DemoAppOptions {
  readonly name: DemoServiceName;
  readonly port?: number;
  readonly host?: string;
  /** The data plane's outbound address (`http://127.0.0.1:7071`). */
  readonly outbound: string;
  /**
   * How HTTP calls reach it: `proxy` (default), plain `fetch` with the
   * environment's proxy; `host`, origin-form requests to `outbound` with the
   * service in Host, for a proxy that opens no CONNECT tunnel (nginx,
   * docs/nginx.md).
   */
  readonly calls?: 'proxy' | 'host';
  /** How orders charges payments: over gRPC (default), or HTTP `POST /charges` (policy rule `charge-http`). */
  readonly charge?: 'grpc' | 'http';
}

export async function startDemoApp(options: DemoAppOptions): Promise<DemoApp> {
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
        res.end(
          JSON.stringify({ service: options.name, error: error instanceof Error ? error.message : String(error) }),
        );
      },
    );
  });

  async function handle(req: IncomingMessage): Promise<HopView> {
    for await (const _chunk of req); // drain the body; the demo apps ignore it
    const route = `${req.method} ${(req.url ?? '/').split('?')[0]}`;
    const next = routes[route];
    const context = header(req, 'baton-context');
    const view: HopView = {
      protocol: 'http',
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
    if (next.grpc === true && options.charge !== 'http')
      return { ...view, downstream: await charge(next.target, context, traceContext(req)) };
    const path = next.grpc === true ? HTTP_CHARGE_PATH : next.path;
    // Like any traced app, pass the W3C trace context on, so the whole chain is one trace.
    const headers = {
      'content-type': 'application/json',
      ...(context === undefined ? {} : { 'baton-context': context }),
      ...traceContext(req),
    };
    const body = JSON.stringify({ from: options.name });
    let status: number;
    let text: string;
    if (options.calls === 'host') {
      // Pointed at the outbound address itself, the service named in Host.
      const answer = await request(`${options.outbound}${path}`, {
        method: next.method as 'POST',
        headers: { ...headers, host: next.target },
        body,
      });
      status = answer.statusCode;
      text = await answer.body.text();
    } else {
      // Plain fetch to the service by name: the environment's proxy is the sidecar (NODE_USE_ENV_PROXY=1, HTTP_PROXY).
      const answer = await fetch(`http://${next.target}${path}`, { method: next.method, headers, body });
      status = answer.status;
      text = await answer.text();
    }
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // a non-JSON answer is shown as text
    }
    return { ...view, downstream: { target: next.target, status, body: parsed } };
  }

  /** The gRPC hop: a unary call through the sidecar's outbound port, the handle and trace context as metadata. */
  function charge(
    target: string,
    context: string | undefined,
    trace: Record<string, string>,
  ): Promise<DownstreamResult> {
    const metadata = new grpc.Metadata();
    if (context !== undefined) metadata.set('baton-context', context);
    for (const [name, value] of Object.entries(trace)) metadata.set(name, value);
    const client = new PaymentsClient(options.outbound.replace(/^http:\/\//, ''), grpc.credentials.createInsecure(), {
      'grpc.default_authority': target,
    });
    return new Promise((resolve) => {
      (
        client as unknown as {
          charge: (r: unknown, m: grpc.Metadata, cb: (e: grpc.ServiceError | null, v?: unknown) => void) => void;
        }
      ).charge({ from: options.name }, metadata, (error, value) => {
        client.close();
        // A refused call is a gRPC status; shown with the HTTP status it stands for, as the HTTP hops show theirs.
        if (error === null) resolve({ target, status: 200, body: value });
        else
          resolve({
            target,
            status: httpStatusOfGrpc(error.code),
            body: { grpcStatus: error.code, grpcMessage: error.details },
          });
      });
    });
  }

  /** Payments' gRPC side: `shop.v1.Payments/Charge`, answered with what this hop saw. */
  function onGrpc(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    stream.on('error', () => {});
    stream.resume();
    stream.on('end', () => {
      const known = headers[':path'] === CHARGE_PATH;
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.once('wantTrailers', () =>
        stream.sendTrailers({
          'grpc-status': known ? '0' : String(GRPC_UNIMPLEMENTED),
          'grpc-message': known ? '' : 'unknown method',
        }),
      );
      if (known) stream.write(grpcFrame(Buffer.from(JSON.stringify(hopOf(headers, 'grpc')))));
      stream.end();
    });
  }

  function hopOf(headers: IncomingHttpHeaders, protocol: 'http' | 'grpc'): HopView {
    const one = (name: string): string | undefined => {
      const value = headers[name];
      return Array.isArray(value) ? value.join(',') : value;
    };
    return {
      protocol,
      service: options.name,
      subject: one('baton-subject'),
      subjectIssuer: one('baton-subject-issuer'),
      subjectType: one('baton-subject-type'),
      caller: one('baton-caller'),
      chain: one('baton-chain'),
      scope: one('baton-scope'),
      txn: one('baton-txn'),
      request: one('baton-request'),
      sawBearerToken: headers.authorization !== undefined,
      sawContextHandle: headers['baton-context'] !== undefined,
    };
  }

  // One port for both: a connection that opens with the HTTP/2 preface is gRPC, any other HTTP/1.1.
  const grpcServer = createH2Server();
  grpcServer.on('stream', onGrpc);
  const listener = createNetServer((socket: Socket) => {
    socket.once('data', (first: Buffer) => {
      socket.pause();
      socket.unshift(first);
      // node:http2 takes the socket over (and its unshifted bytes); node:http reads it as a stream, so it is resumed.
      if (first.subarray(0, PREFACE.length).equals(PREFACE.subarray(0, Math.min(first.length, PREFACE.length))))
        grpcServer.emit('connection', socket);
      else {
        server.emit('connection', socket);
        socket.resume();
      }
    });
    socket.on('error', () => {});
  });

  await new Promise<void>((resolve) => listener.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve));
  const address = listener.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    port,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        grpcServer.close();
        listener.close(() => resolve());
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

const GRPC_UNIMPLEMENTED = 12;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** The demo's one gRPC method, with JSON for messages: no .proto, and the sidecars never read a message anyway. */
const PaymentsClient = grpc.makeGenericClientConstructor(
  {
    charge: {
      path: CHARGE_PATH,
      requestStream: false,
      responseStream: false,
      requestSerialize: (value: unknown) => Buffer.from(JSON.stringify(value)),
      requestDeserialize: (bytes: Buffer) => JSON.parse(bytes.toString()) as unknown,
      responseSerialize: (value: unknown) => Buffer.from(JSON.stringify(value)),
      responseDeserialize: (bytes: Buffer) => JSON.parse(bytes.toString()) as unknown,
    },
  },
  'Payments',
);

/** A gRPC message on the wire: uncompressed flag, 4-byte length, the bytes. */
function grpcFrame(message: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

/** The HTTP status a gRPC status stands for, for the demo's report (the reverse of the sidecar's mapping). */
function httpStatusOfGrpc(code: number): number {
  return code === grpc.status.PERMISSION_DENIED
    ? 403
    : code === grpc.status.UNAUTHENTICATED
      ? 401
      : code === grpc.status.DEADLINE_EXCEEDED
        ? 504
        : code === grpc.status.UNAVAILABLE
          ? 503
          : 500;
}
