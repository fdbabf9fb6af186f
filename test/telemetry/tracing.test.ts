import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tracingActive } from '../../src/telemetry/http-spans.ts';
import { startTelemetry } from '../../src/telemetry/tracing.ts';

describe('telemetry setup', () => {
  it('starts nothing when no OTLP exporter is configured, so the API stays a no-op', async () => {
    const telemetry = startTelemetry({ serviceName: 'orders', env: {} });
    assert.equal(telemetry.enabled, false);
    assert.equal(tracingActive(), false);
    await telemetry.shutdown();
  });

  it('honours OTEL_SDK_DISABLED even with an endpoint set', () => {
    const telemetry = startTelemetry({ serviceName: 'orders', env: { OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' } });
    assert.equal(telemetry.enabled, false);
    assert.equal(tracingActive(), false);
  });
});
