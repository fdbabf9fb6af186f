/**
 * HTTP spans made by hand with @opentelemetry/api (no auto-instrumentation:
 * it would record Authorization headers, and costs more). When the SDK is
 * not started every call here is the API's no-op, and a component handed
 * `Tracing` with `enabled: false` (tracing.ts) skips even that.
 *
 * Attribute names and span status follow the stable HTTP semantic
 * conventions: names `{method}` or `{method} {route}`; a server span is an
 * error from 5xx, a client span from 4xx. A refusal (any baton error code)
 * sets `error.type` whatever the status, so a 401 or 403 SERVER span says
 * why, while its status stays unset as the conventions require.
 *
 * Query strings keep their parameter names and lose their values
 * (`url.query`, `url.full`): a value can be a token.
 */
import type { RequestHead } from '../dataplane/stream.ts';
import type { TLSSocket } from 'node:tls';
import {
  type Attributes,
  type Context,
  type Span,
  type Tracer,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  propagation,
  trace,
} from '@opentelemetry/api';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_REQUEST_METHOD_ORIGINAL,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_NETWORK_PEER_ADDRESS,
  ATTR_NETWORK_PEER_PORT,
  ATTR_NETWORK_PROTOCOL_VERSION,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_URL_FULL,
  ATTR_URL_PATH,
  ATTR_URL_QUERY,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
} from '@opentelemetry/semantic-conventions';
import { BatonAttribute } from './attributes.ts';

export interface HttpSpan {
  readonly span: Span;
  /** The parent's context with this span set: run the request's work in it. */
  readonly context: Context;
}

const KNOWN_METHODS = new Set(['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'TRACE']);

/** network.protocol.version as the conventions spell it: "1.0", "1.1", "2" (Node says "2.0" for HTTP/2). */
function protocolVersion(httpVersion: string): string {
  return httpVersion === '2.0' ? '2' : httpVersion;
}

/**
 * What a SERVER span reads of a request: its head, and the connection it
 * came on. A stream or an IncomingMessage is one; `baton authz` describes
 * the request a proxy asks about the same way (src/authz/), its peer
 * address being the proxy's word.
 */
export type ServerRequestHead = Pick<RequestHead, 'method' | 'url' | 'httpVersion' | 'headers'> & {
  readonly socket: {
    readonly remoteAddress?: string | undefined;
    readonly remotePort?: number | undefined;
    readonly localPort?: number | undefined;
  };
};

/**
 * A SERVER span for a request received, child of the caller's W3C trace
 * context. Baggage is not read. `client.address` is the connection's peer:
 * a caller's Forwarded or X-Forwarded-For is not trusted to name anyone.
 */
export function startServerSpan(tracer: Tracer, req: ServerRequestHead, path: string, route?: string): HttpSpan {
  const parent = propagation.extract(ROOT_CONTEXT, req.headers);
  const method = requestMethod(req.method);
  const { socket } = req;
  const scheme = (socket as Partial<TLSSocket>).encrypted === true ? 'https' : 'http';
  const attributes: Attributes = {
    ...method.attributes,
    [ATTR_URL_PATH]: path,
    [ATTR_URL_SCHEME]: scheme,
    [ATTR_NETWORK_PROTOCOL_VERSION]: protocolVersion(req.httpVersion),
    [ATTR_CLIENT_ADDRESS]: socket.remoteAddress,
    [ATTR_NETWORK_PEER_ADDRESS]: socket.remoteAddress,
    [ATTR_NETWORK_PEER_PORT]: socket.remotePort,
  };
  // Semconv: server.address and server.port from the Host header, the scheme's port when it names none.
  const host = req.headers.host === undefined ? undefined : hostAndPort(req.headers.host);
  if (host !== undefined) {
    attributes[ATTR_SERVER_ADDRESS] = host.address;
    attributes[ATTR_SERVER_PORT] = host.port ?? (scheme === 'https' ? 443 : 80);
  } else {
    attributes[ATTR_SERVER_PORT] = socket.localPort;
  }
  const query = queryOf(req.url);
  if (query !== undefined) attributes[ATTR_URL_QUERY] = redactQuery(query);
  const userAgent = req.headers['user-agent'];
  if (userAgent !== undefined) attributes[ATTR_USER_AGENT_ORIGINAL] = userAgent;
  if (route !== undefined) attributes[ATTR_HTTP_ROUTE] = route;
  const rpc = rpcOf(req, path);
  if (rpc !== undefined) Object.assign(attributes, rpc.attributes);
  const span = tracer.startSpan(
    rpc?.name ?? (route === undefined ? method.name : `${method.name} ${route}`),
    { kind: SpanKind.SERVER, attributes },
    parent,
  );
  return { span, context: trace.setSpan(parent, span) };
}

/**
 * OpenTelemetry's RPC conventions for a gRPC call (`POST
 * /package.Service/Method` with `content-type: application/grpc…`):
 * `rpc.system`, `rpc.service`, `rpc.method`, and the span named
 * `package.Service/Method`; undefined for any other request.
 */
function rpcOf(req: Pick<RequestHead, 'headers'>, path: string): { name: string; attributes: Attributes } | undefined {
  const type = req.headers['content-type'];
  if (typeof type !== 'string' || !type.startsWith('application/grpc')) return undefined;
  const match = /^\/([^/]+)\/([^/]+)$/.exec(path);
  if (match === null) return undefined;
  const [, service, method] = match as unknown as [string, string, string];
  return {
    name: `${service}/${method}`,
    attributes: { 'rpc.system': 'grpc', 'rpc.service': service, 'rpc.method': method },
  };
}

/** `rpc.grpc.status_code` on a gRPC call's span, once the status is known (a refusal's, or the upstream's trailer). */
export function recordGrpcStatus(span: Span, code: number): void {
  span.setAttribute('rpc.grpc.status_code', code);
}

export interface ClientTarget {
  readonly method: string;
  /** Parsed once by the caller, not per span. */
  readonly url: URL;
  readonly route?: string;
}

export interface Endpoint {
  readonly scheme: string;
  /** The host, IPv6 brackets removed. */
  readonly host: string;
  readonly port: number;
  /** `scheme://host[:port]`, as `url.full` starts. */
  readonly origin: string;
}

/** `url.scheme`, `server.address` and `server.port` of a URL, the scheme's default port when it names none. */
export function endpointOf(url: URL): Endpoint {
  const scheme = url.protocol.slice(0, -1);
  return {
    scheme,
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: Number(url.port || (scheme === 'https' ? 443 : 80)),
    origin: url.origin,
  };
}

/** A CLIENT span for a request this process sends, child of the active span. */
export function startClientSpan(tracer: Tracer, target: ClientTarget, extra: Attributes = {}): HttpSpan {
  const parent = context.active();
  const method = requestMethod(target.method);
  const { url } = target;
  const endpoint = endpointOf(url);
  const attributes: Attributes = {
    ...method.attributes,
    [ATTR_SERVER_ADDRESS]: endpoint.host,
    [ATTR_SERVER_PORT]: endpoint.port,
    [ATTR_URL_FULL]: fullUrl(endpoint.origin, `${url.pathname}${url.search}`),
    [ATTR_URL_PATH]: url.pathname,
    [ATTR_URL_SCHEME]: endpoint.scheme,
    // The data plane speaks HTTP/1.1 to upstreams.
    [ATTR_NETWORK_PROTOCOL_VERSION]: '1.1',
    ...extra,
  };
  const span = tracer.startSpan(
    target.route === undefined ? method.name : `${method.name} ${target.route}`,
    { kind: SpanKind.CLIENT, attributes },
    parent,
  );
  return { span, context: trace.setSpan(parent, span) };
}

/** The W3C trace context headers for a request sent in `ctx`, as `[name, value, …]`. */
export function traceHeaders(ctx: Context): string[] {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  const out: string[] = [];
  for (const name in carrier) out.push(name, carrier[name] as string);
  return out;
}

// The refusal code of a span whose end is written elsewhere (the STS's listener): see recordErrorType.
const errorTypes = new WeakMap<Span, string>();

/** Names why the active span's request was refused (a stable error code), for endHttpSpan to record. */
export function recordErrorType(code: string): void {
  const span = trace.getActiveSpan();
  if (span !== undefined && span.isRecording()) errorTypes.set(span, code);
}

/**
 * Ends an HTTP span. `status` is undefined when no response came; then, or
 * for 5xx (server) / 4xx (client), the span's status is ERROR. `error.type`
 * is the refusal's stable code whenever there is one (a 401 SERVER span
 * says why, its status left unset as semconv requires for a server's 4xx),
 * else the status for an error, else `_OTHER` when no response came.
 */
export function endHttpSpan(
  span: Span,
  kind: 'server' | 'client',
  status: number | undefined,
  errorType?: string,
): void {
  if (status !== undefined) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
  const failed = status === undefined || status >= (kind === 'server' ? 500 : 400);
  const code = errorType ?? errorTypes.get(span);
  if (code !== undefined && (failed || (status as number) >= 400)) span.setAttribute(ATTR_ERROR_TYPE, code);
  else if (failed) span.setAttribute(ATTR_ERROR_TYPE, status === undefined ? '_OTHER' : String(status));
  if (failed) span.setStatus({ code: SpanStatusCode.ERROR });
  span.end();
}

function requestMethod(raw: string | undefined): { name: string; attributes: Attributes } {
  const method = raw ?? 'GET';
  if (KNOWN_METHODS.has(method)) return { name: method, attributes: { [ATTR_HTTP_REQUEST_METHOD]: method } };
  // Semconv: unknown methods are `_OTHER`, so a method flood cannot blow up span-name cardinality.
  return {
    name: 'HTTP',
    attributes: { [ATTR_HTTP_REQUEST_METHOD]: '_OTHER', [ATTR_HTTP_REQUEST_METHOD_ORIGINAL]: method.slice(0, 32) },
  };
}

/** A failure's stable code (`BATON_…`, `UND_ERR_…`) for `error.type`; never its message. */
export function errorCode(error: unknown): string {
  const code =
    typeof error === 'object' && error !== null && 'code' in error ? (error as { code: unknown }).code : undefined;
  return typeof code === 'string' ? code : '_OTHER';
}

/** Where an egress call goes: the target service, the upstream the sidecar sends to, and the origin-form target with its query. */
export interface EgressTarget {
  readonly service: string;
  readonly upstream: Endpoint;
  readonly target: string;
}

/**
 * The CLIENT span of a call the app makes through the sidecar (egress),
 * child of the app's own traceparent when the app propagates one. Where it
 * goes (`baton.target`, and the upstream URL the sidecar sends to:
 * `url.full`, `server.address`, `server.port`) is set at creation, where
 * semconv wants what a sampler may decide on; `to` is undefined for a
 * request the outbound port will refuse before it has a target.
 */
export function startEgressSpan(
  tracer: Tracer,
  req: Pick<RequestHead, 'method' | 'headers'> & { readonly httpVersion?: string },
  to: EgressTarget | undefined,
): HttpSpan {
  const parent = propagation.extract(ROOT_CONTEXT, req.headers);
  const method = requestMethod(req.method);
  const attributes: Attributes = { ...method.attributes };
  if (to !== undefined) {
    attributes[BatonAttribute.target] = to.service;
    attributes[ATTR_SERVER_ADDRESS] = to.upstream.host;
    attributes[ATTR_SERVER_PORT] = to.upstream.port;
    attributes[ATTR_URL_SCHEME] = to.upstream.scheme;
    attributes[ATTR_URL_PATH] = to.target.split('?', 1)[0] as string;
    attributes[ATTR_URL_FULL] = fullUrl(to.upstream.origin, to.target);
    // A request keeps its protocol on every hop.
    attributes[ATTR_NETWORK_PROTOCOL_VERSION] = req.httpVersion === '2.0' ? '2' : '1.1';
  }
  const rpc = to === undefined ? undefined : rpcOf(req, to.target.split('?', 1)[0] as string);
  if (rpc !== undefined) Object.assign(attributes, rpc.attributes);
  const span = tracer.startSpan(rpc?.name ?? method.name, { kind: SpanKind.CLIENT, attributes }, parent);
  return { span, context: trace.setSpan(parent, span) };
}

/** `origin` + origin-form `target`, the query's values redacted. */
export function fullUrl(origin: string, target: string): string {
  const query = queryOf(target);
  if (query === undefined) return `${origin}${target}`;
  return `${origin}${target.slice(0, target.indexOf('?') + 1)}${redactQuery(query)}`;
}

/** The query of an origin-form target (after `?`, fragment aside), or undefined when it has none. */
function queryOf(target: string | undefined): string | undefined {
  if (target === undefined) return undefined;
  const mark = target.indexOf('?');
  if (mark === -1) return undefined;
  const hash = target.indexOf('#', mark);
  return target.slice(mark + 1, hash === -1 ? undefined : hash);
}

/**
 * Every value replaced by `REDACTED`, names kept, as semconv scrubs
 * `url.query` and `url.full`: any value may be a token
 * (`?access_token=…`), and so may a bare component without `=`.
 */
export function redactQuery(query: string): string {
  if (query === '') return '';
  return query
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      return eq === -1 ? (pair === '' ? '' : 'REDACTED') : `${pair.slice(0, eq)}=REDACTED`;
    })
    .join('&');
}

/** `host` or `host:port` or `[v6]:port` of a Host header. */
function hostAndPort(value: string): { address: string; port: number | undefined } {
  const match = /^(\[[^\]]*\]|[^:]*)(?::(\d{1,5}))?$/.exec(value);
  if (match === null) return { address: value, port: undefined };
  const address = (match[1] as string).replace(/^\[(.*)\]$/, '$1');
  return { address, port: match[2] === undefined ? undefined : Number(match[2]) };
}
