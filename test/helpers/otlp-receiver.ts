import { createServer, type Server } from 'node:http';
import { listenOnLoopback } from './net.ts';

/** One span as OTLP/JSON carries it, flattened with its resource's service name. */
export interface ReceivedSpan {
  readonly serviceName: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  readonly name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number;
  readonly attributes: Readonly<Record<string, string | number | boolean | undefined>>;
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  readonly statusCode: number;
  readonly events: ReadonlyArray<{ name: string }>;
  /** The resource the span was exported with (service.name, service.version, service.instance.id, …). */
  readonly resource: Readonly<Record<string, string | number | boolean | undefined>>;
  /** The instrumentation scope (tracer) that made it. */
  readonly scope: { readonly name: string; readonly version: string | undefined };
}

export interface OtlpReceiver {
  readonly endpoint: string;
  readonly spans: ReceivedSpan[];
  /** Raw request bodies, for scanning for token material. */
  readonly bodies: string[];
  close(): Promise<void>;
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values?: OtlpValue[] };
}

/**
 * A small OTLP/HTTP receiver for tests (`OTEL_EXPORTER_OTLP_PROTOCOL=http/json`):
 * it decodes what the SDK sends to `/v1/traces` so a test can assert the
 * whole trace tree across processes.
 */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const bodies: string[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      bodies.push(body);
      if (req.url === '/v1/traces' && (req.headers['content-type'] ?? '').includes('json')) {
        try {
          spans.push(...decode(JSON.parse(body)));
        } catch {
          // a malformed export is visible through the missing spans
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await listenOnLoopback(server);
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    spans,
    bodies,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function decode(document: unknown): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  const resourceSpans = (document as { resourceSpans?: unknown[] }).resourceSpans ?? [];
  for (const rs of resourceSpans as Array<{
    resource?: { attributes?: Array<{ key: string; value: OtlpValue }> };
    scopeSpans?: Array<{ scope?: { name?: string; version?: string }; spans?: unknown[] }>;
  }>) {
    const resource = attributesOf(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      const scope = {
        name: String(ss.scope?.name ?? ''),
        version: ss.scope?.version === undefined || ss.scope.version === '' ? undefined : ss.scope.version,
      };
      for (const raw of (ss.spans ?? []) as Array<Record<string, unknown>>) {
        out.push({
          serviceName: String(resource['service.name'] ?? ''),
          traceId: String(raw.traceId),
          spanId: String(raw.spanId),
          parentSpanId: typeof raw.parentSpanId === 'string' && raw.parentSpanId !== '' ? raw.parentSpanId : undefined,
          name: String(raw.name),
          kind: Number(raw.kind),
          attributes: attributesOf(raw.attributes as Array<{ key: string; value: OtlpValue }> | undefined),
          statusCode: Number((raw.status as { code?: number } | undefined)?.code ?? 0),
          events: ((raw.events as Array<{ name: string }> | undefined) ?? []).map((e) => ({ name: e.name })),
          resource,
          scope,
        });
      }
    }
  }
  return out;
}

function attributesOf(
  list: Array<{ key: string; value: OtlpValue }> | undefined,
): Record<string, string | number | boolean | undefined> {
  const out: Record<string, string | number | boolean | undefined> = {};
  for (const { key, value } of list ?? []) out[key] = scalar(value);
  return out;
}

function scalar(value: OtlpValue): string | number | boolean | undefined {
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.arrayValue !== undefined) return (value.arrayValue.values ?? []).map((v) => String(scalar(v))).join(',');
  return undefined;
}
