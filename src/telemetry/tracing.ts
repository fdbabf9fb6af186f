/**
 * OpenTelemetry setup, configured the standard way: OTEL_SERVICE_NAME,
 * OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL (http/protobuf,
 * http/json, grpc), OTEL_TRACES_SAMPLER(_ARG), OTEL_RESOURCE_ATTRIBUTES,
 * OTEL_SDK_DISABLED. When no
 * exporter is configured the SDK is not started at all, so the
 * @opentelemetry/api calls in the hot path are no-ops that cost nothing.
 */
import { randomUUID } from 'node:crypto';
import { type Tracer, propagation, trace } from '@opentelemetry/api';
import { BATON_VERSION } from '../core/version.ts';
import { ATTR_SERVICE_INSTANCE_ID, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
// The SDK is imported only when tracing is on: loading it costs about 40 MB
// of RSS, which a sidecar with tracing off should not pay.

/**
 * What a component needs to trace, passed in as a dependency (STYLE rule
 * 5) rather than probed from the API's global when a handler is built:
 * whether tracing is on, the tracer, and the headers the propagator writes.
 */
export interface Tracing {
  /** False: the hot path skips every span call and relays trace headers untouched. */
  readonly enabled: boolean;
  /** The instrumentation scope `baton` at this version, so a backend can tell which release made a span. */
  readonly tracer: Tracer;
  /** The header names the propagator writes (`traceparent`, `tracestate`), lower-cased: replaced, not relayed, when tracing. */
  readonly propagationFields: ReadonlySet<string>;
}

/** Tracing off: the default of every factory, and what startTelemetry returns when no exporter is configured. */
export const TRACING_OFF: Tracing = Object.freeze({
  enabled: false,
  tracer: trace.getTracer('baton', BATON_VERSION),
  propagationFields: new Set<string>(),
});

export interface Telemetry {
  /** True when spans are recorded and exported. */
  readonly enabled: boolean;
  /** What to pass to the sidecar, the STS and the policy server. */
  readonly tracing: Tracing;
  /** Flushes pending spans and stops the SDK (on SIGTERM). */
  shutdown(): Promise<void>;
}

const DISABLED: Telemetry = { enabled: false, tracing: TRACING_OFF, shutdown: async () => {} };

// Flushing must not hold a terminating pod past its grace period when the collector is gone.
const SHUTDOWN_TIMEOUT_MS = 5_000;

export async function startTelemetry(options: {
  serviceName: string;
  env: Readonly<Record<string, string | undefined>>;
}): Promise<Telemetry> {
  const { env } = options;
  if (isTrue(env.OTEL_SDK_DISABLED)) return DISABLED;
  const exporterConfigured =
    env.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined ||
    env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT !== undefined ||
    (env.OTEL_TRACES_EXPORTER !== undefined && env.OTEL_TRACES_EXPORTER !== 'none');
  if (!exporterConfigured) return DISABLED;

  // baton serves its metrics as Prometheus text and writes its audit trail as
  // JSON logs; the SDK is here for traces only unless the operator asks for
  // more. The SDK reads its settings (exporter, protocol, sampler, batch
  // delays) from process.env itself, so the defaults go where it looks.
  process.env.OTEL_METRICS_EXPORTER ??= 'none';
  process.env.OTEL_LOGS_EXPORTER ??= 'none';
  const serviceName = env.OTEL_SERVICE_NAME ?? options.serviceName;
  const [{ NodeSDK, resources }, { W3CTraceContextPropagator }] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    import('@opentelemetry/core'),
  ]);
  const sdk = new NodeSDK({
    serviceName,
    // service.version says which release made a span; service.instance.id
    // tells replicas apart (a random UUID per process, as semconv suggests).
    // OTEL_RESOURCE_ATTRIBUTES overrides either, say with the pod's UID;
    // no host or process detectors: they would put the command line in every export.
    resource: resources.defaultResource().merge(
      resources.resourceFromAttributes({
        [ATTR_SERVICE_VERSION]: BATON_VERSION,
        [ATTR_SERVICE_INSTANCE_ID]: randomUUID(),
      }),
    ),
    resourceDetectors: [resources.envDetector],
    // W3C trace context only: baggage is never read for identity, so it is
    // not propagated by baton itself either (apps' own headers pass through).
    textMapPropagator: new W3CTraceContextPropagator(),
    instrumentations: [],
  });
  sdk.start();
  return {
    enabled: true,
    tracing: {
      enabled: true,
      tracer: trace.getTracer('baton', BATON_VERSION),
      propagationFields: new Set(propagation.fields().map((f) => f.toLowerCase())),
    },
    shutdown: async () => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, SHUTDOWN_TIMEOUT_MS)));
      await Promise.race([sdk.shutdown().catch(() => undefined), timeout]);
      clearTimeout(timer);
    },
  };
}

function isTrue(value: string | undefined): boolean {
  return value !== undefined && value.trim().toLowerCase() === 'true';
}
