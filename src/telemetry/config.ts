/**
 * The `telemetry` block shared by the sidecar and the STS config. Exporter,
 * sampler and service name come from the standard OTEL_* variables
 * (./tracing.ts); this block holds only what OpenTelemetry has no variable for.
 */
import { type Static, Type } from '@sinclair/typebox';
import { ListenPort } from '../config/atoms.ts';

export const TelemetryConfigSchema = Type.Object(
  {
    subjectHashKey: Type.Optional(
      Type.String({
        minLength: 16,
        description:
          'a secret of at least 16 characters, the same in every process, keying the baton.subject pseudonym so spans join across hops',
      }),
    ),
    subjectInClear: Type.Boolean({
      default: false,
      description: 'put the clear subject id in spans instead of its keyed hash',
    }),
  },
  { additionalProperties: false, default: {} },
);

export type TelemetryConfig = Readonly<Static<typeof TelemetryConfigSchema>>;

/**
 * `admin`: the STS's and the policy server's plaintext admin port
 * (./admin-listener.ts), for Prometheus and probes when the main port is
 * mutual TLS. Off unless a port is set; the Helm chart, deploy/ and
 * docker-compose set one.
 */
export const AdminPortConfigSchema = Type.Object(
  {
    port: Type.Optional(
      ListenPort(
        undefined,
        'a plaintext port serving only /livez, /readyz and /metrics, on the same host (off when unset)',
      ),
    ),
  },
  { additionalProperties: false, default: {} },
);
