/**
 * The process's own health, next to baton's series on each `/metrics`:
 * prom-client's default collectors (`process_cpu_seconds_total`,
 * `process_resident_memory_bytes`, `process_open_fds`,
 * `nodejs_eventloop_lag_seconds`, `nodejs_heap_size_used_bytes`,
 * `nodejs_gc_duration_seconds`, …), the names every Node.js dashboard and
 * alert already queries, and `baton_build_info`. They are read at scrape
 * time, never on the request path; baton's own series stay on the hand-made
 * registries (src/sidecar/metrics.ts), which are cheaper per request.
 * Loading and starting them costs about 2.5 MB of RSS in a process that has
 * already loaded undici, fastify, jose and pino (measured on Node 24).
 */
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { BATON_VERSION } from '../core/version.ts';

const MISNAMED_GAUGES = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

export type Component = 'sidecar' | 'sts' | 'policy-server' | 'authz';

export interface RuntimeMetrics {
  /** Prometheus text (0.0.4) of the runtime and build series. */
  render(): Promise<string>;
}

/** `service`: the sidecar's service, `baton-sts` or `baton-policy-server`; dashboards join on it to pick one service's pods. */
export function createRuntimeMetrics(component: Component, service: string): RuntimeMetrics {
  // A registry of its own: nothing else in the process registers into it, and two sidecars in one test process do not collide.
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // Gauges named like counters, which promtool refuses; each is the sum of the labelled nodejs_active_{handles,requests,resources} kept beside it.
  for (const name of MISNAMED_GAUGES) registry.removeSingleMetric(name);
  const build = new Gauge({
    name: 'baton_build_info',
    help: 'Always 1: the baton version, component and service serving these metrics, and the Node.js version it runs on.',
    labelNames: ['version', 'component', 'service', 'nodejs_version'],
    registers: [registry],
  });
  build.set({ version: BATON_VERSION, component, service, nodejs_version: process.versions.node }, 1);
  return { render: () => registry.metrics() };
}
