import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { startTelemetry } from '../../src/telemetry/tracing.ts';

const require = createRequire(import.meta.url);

describe('telemetry setup', () => {
  it('starts nothing when no OTLP exporter is configured, so the API stays a no-op', async () => {
    const telemetry = await startTelemetry({ serviceName: 'orders', env: {} });
    assert.equal(telemetry.enabled, false);
    assert.equal(telemetry.tracing.enabled, false);
    assert.equal(telemetry.tracing.propagationFields.size, 0);
    await telemetry.shutdown();
  });

  it('does not even load the SDK when tracing is off (it costs about 40 MB)', async () => {
    await startTelemetry({ serviceName: 'orders', env: {} });
    const loaded = Object.keys(require.cache).filter((path) => path.includes('@opentelemetry/sdk-node'));
    assert.deepEqual(loaded, []);
  });

  it('honours OTEL_SDK_DISABLED even with an endpoint set', async () => {
    const telemetry = await startTelemetry({
      serviceName: 'orders',
      env: { OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' },
    });
    assert.equal(telemetry.enabled, false);
    assert.equal(telemetry.tracing.enabled, false);
    assert.equal(telemetry.tracing.propagationFields.size, 0);
  });
});
