/**
 * HTTP spans made by hand with @opentelemetry/api (no auto-instrumentation:
 * it would record Authorization headers, and costs more). When the SDK is
 * not started every call here is the API's no-op, and `tracingActive()`
 * lets the hot path skip even that.
 *
 * Attribute names and span status follow the stable HTTP semantic
 * conventions: names `{method}` or `{method} {route}`; a server span is an
 * error from 5xx, a client span from 4xx.
 */
import type { IncomingMessage } from 'node:http';
import { type Attributes, type Context, type Span, type Tracer, ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation, trace } from '@opentelemetry/api';
import {
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_REQUEST_METHOD_ORIGINAL,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_NETWORK_PEER_ADDRESS,
  ATTR_NETWORK_PEER_PORT,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_URL_PATH,
  ATTR_URL_SCHEME,
} from './attributes.ts';

export interface HttpSpan {
  readonly span: Span;
  /** The parent's context with this span set: run the request's work in it. */
  readonly context: Context;
}

const KNOWN_METHODS = new Set(['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'TRACE']);

export function batonTracer(): Tracer {
  return trace.getTracer('baton');
}

/** True once an SDK registered a propagator; false by default, when nothing is exported. */
export function tracingActive(): boolean {
  return propagation.fields().length > 0;
}

/** The header names the propagator writes (`traceparent`, `tracestate`): replaced, not relayed, when tracing. */
export function propagationFields(): ReadonlySet<string> {
  return new Set(propagation.fields().map((f) => f.toLowerCase()));
}

/** A SERVER span for a request received, child of the caller's W3C trace context. Baggage is not read. */
export function startServerSpan(tracer: Tracer, req: IncomingMessage, path: string, route?: string): HttpSpan {
  const parent = propagation.extract(ROOT_CONTEXT, req.headers);
  const method = requestMethod(req.method);
  const attributes: Attributes = {
    ...method.attributes,
    [ATTR_URL_PATH]: path,
    [ATTR_URL_SCHEME]: 'http',
    [ATTR_SERVER_PORT]: req.socket.localPort,
    [ATTR_NETWORK_PEER_ADDRESS]: req.socket.remoteAddress,
    [ATTR_NETWORK_PEER_PORT]: req.socket.remotePort,
  };
  const host = req.headers.host;
  if (host !== undefined) attributes[ATTR_SERVER_ADDRESS] = host.replace(/:\d+$/, '');
  if (route !== undefined) attributes[ATTR_HTTP_ROUTE] = route;
  const span = tracer.startSpan(route === undefined ? method.name : `${method.name} ${route}`, { kind: SpanKind.SERVER, attributes }, parent);
  return { span, context: trace.setSpan(parent, span) };
}

export interface ClientTarget {
  readonly method: string;
  /** Parsed once by the caller, not per span. */
  readonly url: URL;
  readonly route?: string;
}

export interface Endpoint {
  readonly scheme: string;
  readonly port: number;
}

/** `url.scheme` and `server.port` of a URL, the scheme's default port when it names none. */
export function endpointOf(url: URL): Endpoint {
  const scheme = url.protocol.slice(0, -1);
  return { scheme, port: Number(url.port || (scheme === 'https' ? 443 : 80)) };
}

/** A CLIENT span for a request this process sends, child of the active span. */
export function startClientSpan(tracer: Tracer, target: ClientTarget, extra: Attributes = {}): HttpSpan {
  const parent = context.active();
  const method = requestMethod(target.method);
  const { url } = target;
  const endpoint = endpointOf(url);
  const attributes: Attributes = {
    ...method.attributes,
    [ATTR_SERVER_ADDRESS]: url.hostname,
    [ATTR_SERVER_PORT]: endpoint.port,
    [ATTR_URL_PATH]: url.pathname,
    [ATTR_URL_SCHEME]: endpoint.scheme,
    ...extra,
  };
  const span = tracer.startSpan(target.route === undefined ? method.name : `${method.name} ${target.route}`, { kind: SpanKind.CLIENT, attributes }, parent);
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

/**
 * Ends an HTTP span. `status` is undefined when no response came; then, or
 * for 5xx (server) / 4xx (client), the span is an error with `error.type`
 * the failure's stable code.
 */
export function endHttpSpan(span: Span, kind: 'server' | 'client', status: number | undefined, errorType?: string): void {
  if (status !== undefined) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
  if (status === undefined || status >= (kind === 'server' ? 500 : 400)) {
    span.setAttribute(ATTR_ERROR_TYPE, errorType ?? (status === undefined ? '_OTHER' : String(status)));
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}

function requestMethod(raw: string | undefined): { name: string; attributes: Attributes } {
  const method = raw ?? 'GET';
  if (KNOWN_METHODS.has(method)) return { name: method, attributes: { [ATTR_HTTP_REQUEST_METHOD]: method } };
  // Semconv: unknown methods are `_OTHER`, so a method flood cannot blow up span-name cardinality.
  return { name: 'HTTP', attributes: { [ATTR_HTTP_REQUEST_METHOD]: '_OTHER', [ATTR_HTTP_REQUEST_METHOD_ORIGINAL]: method.slice(0, 32) } };
}

/** A failure's stable code (`BATON_…`, `UND_ERR_…`) for `error.type`; never its message. */
export function errorCode(error: unknown): string {
  const code = typeof error === 'object' && error !== null && 'code' in error ? (error as { code: unknown }).code : undefined;
  return typeof code === 'string' ? code : '_OTHER';
}

/**
 * The CLIENT span of a call the app makes through the sidecar (egress),
 * child of the app's own traceparent when the app propagates one; the
 * target is filled in by `describeEgressTarget` once it is known.
 */
export function startEgressSpan(tracer: Tracer, req: IncomingMessage): HttpSpan {
  const parent = propagation.extract(ROOT_CONTEXT, req.headers);
  const method = requestMethod(req.method);
  const span = tracer.startSpan(method.name, { kind: SpanKind.CLIENT, attributes: method.attributes }, parent);
  return { span, context: trace.setSpan(parent, span) };
}

/** Adds where the active egress span goes: the service, the upstream port, the path (no query). */
export function describeEgressTarget(service: string, upstream: Endpoint, path: string): void {
  const span = trace.getActiveSpan();
  if (span === undefined || !span.isRecording()) return;
  span.setAttributes({ [ATTR_SERVER_ADDRESS]: service, [ATTR_SERVER_PORT]: upstream.port, [ATTR_URL_SCHEME]: upstream.scheme, [ATTR_URL_PATH]: path });
}
