/**
 * A node:http request listener wrapped in a SERVER span, for servers whose
 * framework owns the request lifecycle (the STS's Fastify). The request and
 * response emitters are bound to the span's context, so handlers that run
 * from stream events (body parsing) still log and trace inside it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Tracer, context, trace } from '@opentelemetry/api';
import { ATTR_HTTP_ROUTE } from '@opentelemetry/semantic-conventions';
import { endHttpSpan, startServerSpan } from './http-spans.ts';

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

/** `untraced`: paths (query aside) served without a span, such as Prometheus scrapes and health probes. */
export function tracedListener(
  tracer: Tracer,
  listener: RequestListener,
  untraced: ReadonlySet<string> = new Set(),
): RequestListener {
  return (req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0] as string;
    if (untraced.has(path)) return listener(req, res);
    const server = startServerSpan(tracer, req, path);
    context.bind(server.context, req);
    context.bind(server.context, res);
    res.once('close', () =>
      endHttpSpan(
        server.span,
        'server',
        res.writableFinished ? res.statusCode : undefined,
        res.writableFinished ? undefined : 'connection_closed',
      ),
    );
    context.with(server.context, listener, undefined, req, res);
  };
}

/** Names the active server span `{method} {route}` once the framework has matched a route. */
export function setHttpRoute(method: string, route: string | undefined): void {
  if (route === undefined) return;
  const span = trace.getActiveSpan();
  if (span === undefined || !span.isRecording()) return;
  span.updateName(`${method} ${route}`);
  span.setAttribute(ATTR_HTTP_ROUTE, route);
}
