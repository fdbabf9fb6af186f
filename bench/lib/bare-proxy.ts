/**
 * The floor for a proxy on this runtime: node:http in, undici's raw
 * dispatch out, keep-alive, no token work, no header rules beyond dropping
 * Host. What it costs is what any Node.js sidecar pays before doing
 * anything useful; the gap from here to nginx is the runtime, the gap from
 * here to baton is baton.
 *
 * With OTEL_EXPORTER_OTLP_ENDPOINT set it is also the floor for tracing:
 * the same SDK setup as baton (startTelemetry) and one SERVER span per
 * request with the HTTP semantic-convention attributes only, child of the
 * caller's traceparent and propagated upstream. No identity attributes, no
 * decision event: what any traced Node.js proxy pays per request.
 * Run as a process: node bench/lib/bare-proxy.ts <listen port> <upstream port>
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { type Dispatcher, Pool } from 'undici';
import { endHttpSpan, startServerSpan, traceHeaders } from '../../src/telemetry/http-spans.ts';
import { startTelemetry } from '../../src/telemetry/tracing.ts';

const [listen, upstream] = process.argv.slice(2).map(Number);
const pool = new Pool(`http://127.0.0.1:${upstream}`, { pipelining: 1, keepAliveTimeout: 4_000 });
const telemetry = await startTelemetry({ serviceName: 'bare-proxy', env: process.env });
const { tracer } = telemetry.tracing;
const dropped = new Set(['host', ...telemetry.tracing.propagationFields]);

function forward(
  req: IncomingMessage,
  res: ServerResponse,
  headers: string[],
  done?: (status: number | undefined) => void,
): void {
  let status: number | undefined;
  pool.dispatch(
    { path: req.url as string, method: req.method as Dispatcher.HttpMethod, headers, body: null },
    {
      // undici 7 takes the controller-style handler only when onRequestStart is present.
      onRequestStart() {},
      onResponseStart(_c, statusCode, responseHeaders) {
        status = statusCode;
        const {
          connection: _connection,
          'keep-alive': _keepAlive,
          'transfer-encoding': _te,
          ...rest
        } = responseHeaders;
        res.writeHead(statusCode, rest as Record<string, string>);
      },
      onResponseData(_c, chunk) {
        res.write(chunk);
      },
      onResponseEnd() {
        res.end();
        done?.(status);
      },
      onResponseError() {
        res.destroy();
        done?.(undefined);
      },
    },
  );
}

createServer((req, res) => {
  const headers: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (!dropped.has((req.rawHeaders[i] as string).toLowerCase()))
      headers.push(req.rawHeaders[i] as string, req.rawHeaders[i + 1] as string);
  }
  if (!telemetry.enabled) return forward(req, res, headers);
  const { span, context } = startServerSpan(tracer, req, req.url as string);
  headers.push(...traceHeaders(context));
  forward(req, res, headers, (status) => endHttpSpan(span, 'server', status));
}).listen(listen, '127.0.0.1', () => process.stdout.write('ready\n'));
