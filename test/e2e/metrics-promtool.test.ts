import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { request } from 'undici';
import { createAdminHandler } from '../../src/sidecar/admin.ts';
import { createSidecarMetrics, FORWARDED, UNKNOWN_TARGET } from '../../src/sidecar/metrics.ts';
import { createRuntimeMetrics } from '../../src/telemetry/runtime-metrics.ts';
import { createStsMetrics } from '../../src/telemetry/sts-metrics.ts';

import { createRedisReplayStore } from '../../src/sts/replay-store.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { listenOnLoopback, waitFor } from '../helpers/net.ts';
import { BadRequestError } from '../../src/core/errors.ts';
import { PolicyDeniedError } from '../../src/policy/language/errors.ts';
import { loadRedis } from '../../src/redis/client.ts';

/** `promtool check metrics` on the text; CI installs Debian's prometheus package for it. */
function promtool(text: string): { status: number | null; output: string } {
  const result = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 10_000 });
  if (result.error !== undefined)
    throw new Error(`promtool is required for this test (apt-get install prometheus): ${result.error.message}`);
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

function exercisedSidecarMetrics() {
  const metrics = createSidecarMetrics();
  metrics.requests('inbound', 'orders').done(200, FORWARDED, 0.003);
  metrics.requests('outbound', 'payments').done(403, PolicyDeniedError.code, 0.0004);
  metrics.requests('outbound', UNKNOWN_TARGET).done(400, BadRequestError.code, 0.0001);
  metrics.decision('orders.accepts.from-gateway', 'allow');
  metrics.decision('payments.accepts', 'deny');
  metrics.decision('payments.accepts.refunds', 'would_deny');
  metrics.shadowDenial('payments', 'payments.accepts.refunds');
  metrics.exchange('hit', 0.00002);
  metrics.exchange('miss', 0.004);
  metrics.policyVersion(7);
  metrics.inflight('inbound')(1);
  metrics.redisTier('available');
  metrics.redisTier('unsealable');
  metrics.redisTier('auth');
  return metrics;
}

describe('Prometheus metrics', () => {
  it('serves sidecar metrics on the admin port that pass promtool check metrics', async (t) => {
    const server = createServer(
      createAdminHandler({
        ready: () => false,
        waitingFor: () => ['sts keys'],
        metrics: exercisedSidecarMetrics(),
        runtime: createRuntimeMetrics('sidecar', 'orders'),
      }),
    );
    await listenOnLoopback(server);
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const address = server.address();
    const response = await request(
      `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}/metrics`,
    );
    const text = await response.body.text();
    assert.equal(response.statusCode, 200);
    const checked = promtool(text);
    assert.equal(checked.status, 0, checked.output);
    for (const family of [
      'baton_requests_total',
      'baton_request_duration_seconds_bucket',
      'baton_decisions_total',
      'baton_exchange_duration_seconds_bucket',
      'baton_token_cache_requests_total',
      'baton_inflight_requests',
      'baton_policy_version',
      'baton_policy_updates_total',
      'baton_upstream_retries_total',
      'baton_ready',
      'baton_build_info',
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_seconds',
      'nodejs_heap_size_used_bytes',
    ]) {
      assert.match(text, new RegExp(`^${family}[{ ]`, 'm'), family);
    }
    assert.match(
      text,
      /^baton_requests_total\{direction="outbound",target="payments",code="403",reason="BATON_POLICY_DENIED"\} 1$/m,
    );
    assert.match(
      text,
      /^baton_requests_total\{direction="outbound",target="_OTHER",code="400",reason="BATON_BAD_REQUEST"\} 1$/m,
    );
    assert.match(
      text,
      /^baton_request_duration_seconds_bucket\{direction="inbound",target="orders",code="200",reason="forwarded",le="0.0025"\} 0$/m,
    );
    assert.match(
      text,
      /^baton_request_duration_seconds_bucket\{direction="inbound",target="orders",code="200",reason="forwarded",le="0.005"\} 1$/m,
    );
    assert.match(
      text,
      /^baton_request_duration_seconds_sum\{direction="inbound",target="orders",code="200",reason="forwarded"\} 0.003$/m,
    );
    // Cache hits and STS round trips are separate series: a hit's microseconds do not drown a miss's milliseconds.
    assert.match(text, /^baton_exchange_duration_seconds_count\{result="hit"\} 1$/m);
    assert.match(text, /^baton_exchange_duration_seconds_sum\{result="miss"\} 0.004$/m);
    assert.match(text, /^baton_token_cache_requests_total\{result="miss"\} 1$/m);
    assert.match(
      text,
      /^baton_build_info\{version="\d+\.\d+\.\d+[^"]*",component="sidecar",service="orders",nodejs_version="24\.[^"]+"\} 1$/m,
    );
    assert.match(text, /^baton_dependency_ready\{dependency="sts_keys"\} 0$/m);
    // The Redis tier: its state, each fault once per change, and values that would not open.
    assert.match(text, /^baton_redis_available 0$/m);
    assert.match(text, /^baton_redis_faults_total\{fault="auth"\} 1$/m);
    assert.match(text, /^baton_token_cache_unsealable_total 1$/m);
    assert.match(text, /^baton_dependency_ready\{dependency="policy"\} 1$/m);
  });

  it('renders STS token request counts and latency that pass promtool check metrics', () => {
    const metrics = createStsMetrics();
    metrics.tokenRequest('token_exchange', 'issued', 0.003);
    metrics.tokenRequest('token_exchange', 'invalid_target', 0.002);
    metrics.tokenRequest('client_credentials', 'issued', 0.001);
    const text = metrics.render();
    const checked = promtool(text);
    assert.equal(checked.status, 0, checked.output);
    assert.match(text, /^baton_sts_token_requests_total\{grant="token_exchange",outcome="invalid_target"\} 1$/m);
    assert.match(text, /^baton_sts_token_request_duration_seconds_count\{grant="token_exchange"\} 2$/m);
  });

  it("renders the STS replay store's Redis state that passes promtool check metrics", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-metrics-'));
    writeFileSync(join(dir, 'password'), 'pw\n');
    // Nothing listens on port 1: the store degrades to its own replay set and says so.
    const store = createRedisReplayStore({
      Redis: await loadRedis(),
      commandTimeoutMs: 250,
      url: 'redis://127.0.0.1:1',
      credentials: { username: 'baton-sts', passwordFile: join(dir, 'password') },
      logger: createLogger({ name: 'test', level: 'silent' }),
    });
    t.after(async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    });
    await waitFor(async () => /fault="unavailable"/.test(store.renderMetrics?.() ?? ''), {
      what: 'the fault counted',
      timeoutMs: 5_000,
    });
    const text = createStsMetrics().render() + (store.renderMetrics?.() ?? '');
    const checked = promtool(text);
    assert.equal(checked.status, 0, checked.output);
    assert.match(text, /^baton_sts_redis_available 0$/m);
  });

  it('escapes label values so a hostile rule name cannot forge a series', () => {
    const metrics = createSidecarMetrics();
    metrics.decision('a"b\\c\nbaton_fake 1', 'allow');
    const checked = promtool(metrics.render());
    assert.equal(checked.status, 0, checked.output);
    assert.doesNotMatch(metrics.render(), /^baton_fake/m);
  });
});
