/**
 * Scenario 7, baton inside nginx (#26): the same trivial app on loopback
 * called through
 *   (a) a pair of nginx hops at their defaults (one worker each), the
 *       baseline, as in scenario 1;
 *   (b) the same pair where each nginx asks `baton authz` about every
 *       request with auth_request, no decision cache: the outer nginx (the
 *       caller's outbound, examples/nginx/conf.d/upstream.conf.template)
 *       asks orders' authorizer for a token for payments, the inner one
 *       (the callee's ingress, conf.d/ingress.conf.template) asks
 *       payments' authorizer to verify it and check the chain;
 *   (c) the same with nginx's decision cache on (proxy_cache on the auth
 *       locations, each answer reused for its max-age, 5 s by default).
 * examples/nginx/ as it ships, in plaintext (the baseline pair is
 * plaintext; the upstream file sends on in plain HTTP): service-identity
 * calls orders → payments GET /bench, as in scenario 1(d). Both
 * authorizers run the bundle at log level warn (the audit line off, as
 * nginx runs with access_log off); their CPU per 1,000 requests is per
 * 1,000 checks, each request being one check at each.
 *
 * Then Envoy's side: the gRPC Check of an inbound request on loopback
 * (@grpc/grpc-js with the vendored protos, as test/authz/ drives it), p50
 * and p99 at a fixed concurrency, warm caches.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Agent, request } from 'undici';
import { startMesh } from '../src/demo/mesh.ts';
import { type AuthzProcess, startAuthz } from '../test/helpers/authz-mesh.ts';
import { examplesCommandLine, renderExamples } from '../test/helpers/authz-nginx.ts';
import { checkRequest, connectExtAuthz } from '../test/helpers/ext-authz-client.ts';
import { freePort, waitFor } from '../test/helpers/net.ts';
import { type RunningProcess, startProcess } from '../test/helpers/process.ts';
import { benchBundle, IMAGE_ENV } from './lib/bundle.ts';
import { ensureNginx, type NginxProxy, startNginxProxy, waitForExit } from './lib/nginx.ts';
import { childPids } from './lib/proc-stats.ts';
import { announceBaselines, type Baselines, medianRounds, type Row, writeResults } from './lib/report.ts';
import { type BenchOptions, type Check, ratio, round, type ScenarioResult } from './lib/scenario.ts';
import { BENCH_POLICY, measureRounds, type Measurement, type Variant, warmUp } from './hop.bench.ts';

const FIXED_RATE = 1000;
const PATH = '/bench';
const BASELINE = 'nginx pair';
const UNCACHED = 'nginx pair + baton authz per request, no decision cache';
const CACHED = 'nginx pair + baton authz per request, nginx decision cache';

interface AuthzPair {
  readonly variant: Variant;
  stop(): void;
}

/** Two nginx instances from examples/nginx/, daemonised like scenario 1's, one worker each: the outer asks `outbound`, the inner asks `inbound`. */
function startAuthzPair(
  binary: string,
  name: string,
  ports: { outer: number; inner: number; innerOutbound: number; app: number },
  orders: AuthzProcess,
  payments: AuthzProcess,
  cache: boolean,
): AuthzPair {
  const started: Array<{ dir: string; pid: number }> = [];
  const start = (role: 'outer' | 'inner'): { dir: string; pid: number } => {
    const dir = mkdtempSync(join(tmpdir(), `baton-bench-authz-${role}-`));
    chmodSync(dir, 0o755);
    const authz = role === 'outer' ? orders : payments;
    const values = {
      // Each nginx reaches its authorizer on a Unix domain socket (http.socket), as docs/nginx.md recommends.
      BATON_AUTHZ: `unix:${socketOf(authz)}`,
      BATON_APP: `127.0.0.1:${ports.app}`,
      BATON_LISTEN: `127.0.0.1:${ports.inner}`,
      // The inner nginx's own outbound listener is unused here, but the ingress file opens it.
      BATON_OUTBOUND_LISTEN: `127.0.0.1:${role === 'outer' ? ports.outer : ports.innerOutbound}`,
      // On memory, as docs/nginx.md asks.
      BATON_CACHE_DIR: join(cacheRoot(), `${name.length}-${role}-${process.pid}-${started.length}`),
      BATON_DECISION_CACHE: cache ? 'baton_decisions' : 'off',
    };
    // The outer nginx serves only the outbound listener (server_name payments → the inner nginx); the inner one the ingress.
    renderExamples(
      dir,
      role === 'inner' ? 'ingress' : 'none',
      values,
      role === 'outer'
        ? [{ ...values, BATON_TARGET: 'payments', BATON_TARGET_ADDRESS: `127.0.0.1:${ports.inner}` }]
        : [],
      { plaintextUpstreams: true },
    );
    const run = spawnSync(binary, examplesCommandLine(dir, { daemon: true }));
    if (run.status !== 0) throw new Error(`nginx (${name}, ${role}) failed to start: ${run.stderr.toString()}`);
    const pid = Number(readFileSync(join(dir, 'nginx.pid'), 'utf8').trim());
    const instance = { dir, pid };
    started.push(instance);
    return instance;
  };
  const stop = (): void => {
    for (const { dir, pid } of started) {
      // By its pid: the pid file is named on the command line (-g), so `nginx -s stop` would look for the default one.
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
      waitForExit(pid, 5_000);
      rmSync(dir, { recursive: true, force: true });
    }
  };
  try {
    const inner = start('inner');
    const outer = start('outer');
    return {
      variant: {
        name,
        url: `http://127.0.0.1:${ports.outer}${PATH}`,
        headers: { host: 'payments' },
        proxies: [
          { name: 'outer nginx', pids: () => [outer.pid, ...childPids(outer.pid)] },
          { name: 'inner nginx', pids: () => [inner.pid, ...childPids(inner.pid)] },
          { name: 'orders authz (outbound checks)', pids: () => [orders.process.child.pid as number] },
          { name: 'payments authz (inbound checks)', pids: () => [payments.process.child.pid as number] },
        ],
      },
      stop,
    };
  } catch (error) {
    stop();
    throw error;
  }
}

const SOCKETS = mkdtempSync(join(tmpdir(), 'baton-bench-authz-sockets-'));
chmodSync(SOCKETS, 0o755);

/** Where an authorizer of this benchmark serves its HTTP check. */
function socketOf(authz: { service: string }): string {
  return join(SOCKETS, `${authz.service}.sock`);
}

/** tmpfs when the machine has one. */
function cacheRoot(): string {
  return existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
}

/** gRPC Check latency of an inbound check on loopback: `concurrency` calls in flight for `durationSec`. */
async function grpcCheckLatency(
  payments: AuthzProcess,
  orders: AuthzProcess,
  durationSec: number,
  concurrency: number,
): Promise<{ checks: number; p50Ms: number; p99Ms: number; perSecond: number }> {
  // A service token for payments, as orders' authorizer hands it to nginx.
  const agent = new Agent({ connect: { socketPath: socketOf(orders) } });
  const out = await request(`http://localhost/baton-authz/outbound${PATH}`, {
    headers: { host: 'payments' },
    dispatcher: agent,
  });
  await out.body.dump();
  await agent.close();
  const authorization = String(out.headers.authorization);
  const client = connectExtAuthz(payments.grpc);
  const message = checkRequest({ method: 'GET', path: PATH, host: 'payments', headers: { authorization } });
  const latencies: number[] = [];
  try {
    // Warm: the verified-token cache, the decision cache, the JIT.
    for (let i = 0; i < 200; i++) await client.check(message);
    const until = performance.now() + durationSec * 1000;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < until) {
          const started = performance.now();
          const response = await client.check(message);
          if (response.status?.code !== 0)
            throw new Error(`bench: the gRPC check was refused: ${JSON.stringify(response.status)}`);
          latencies.push(performance.now() - started);
        }
      }),
    );
  } finally {
    client.close();
  }
  latencies.sort((a, b) => a - b);
  const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return { checks: latencies.length, p50Ms: at(0.5), p99Ms: at(0.99), perSecond: latencies.length / durationSec };
}

export async function run(options: BenchOptions): Promise<ScenarioResult> {
  const rounds = options.quick ? 1 : 3;
  const durationSec = options.quick ? 1 : 4;
  const connections = 32;
  const nginxBinary = ensureNginx();
  const bundle = await benchBundle();
  const env = { ...IMAGE_ENV, BATON_LOG_LEVEL: 'warn' };
  const control = await startMesh({
    policyFile: BENCH_POLICY,
    env,
    entry: bundle.baton,
    transport: 'plaintext',
    dataPlane: 'none',
  });
  const stops: Array<() => unknown> = [];
  try {
    const authzOf = (service: 'orders' | 'payments') =>
      startAuthz(control, service, { entry: bundle.baton, env, config: { http: { socket: socketOf({ service }) } } });
    const [orders, payments] = await Promise.all([authzOf('orders'), authzOf('payments')]);
    stops.push(
      () => orders.stop(),
      () => payments.stop(),
    );
    const appPort = await freePort();
    const app: RunningProcess = startProcess(
      process.execPath,
      [
        bundle.baton,
        'demo',
        'app',
        '--name',
        'payments',
        '--port',
        String(appPort),
        '--outbound',
        'http://127.0.0.1:9',
      ],
      env,
    );
    stops.push(() => app.stop());
    await waitFor(async () => (await fetch(`http://127.0.0.1:${appPort}${PATH}`)).ok, {
      timeoutMs: 20_000,
      what: 'the payments app',
    });

    const baseline: NginxProxy[] = [];
    const inner = startNginxProxy(nginxBinary, await freePort(), appPort);
    baseline.push(inner);
    const outer = startNginxProxy(nginxBinary, await freePort(), inner.port);
    baseline.push(outer);
    stops.push(() => baseline.forEach((p) => p.stop()));
    const baselines: Baselines = { 'outer nginx (plain pair)': outer.config, 'inner nginx (plain pair)': inner.config };
    announceBaselines('authz', baselines);
    const uncached = startAuthzPair(
      nginxBinary,
      UNCACHED,
      { outer: await freePort(), inner: await freePort(), innerOutbound: await freePort(), app: appPort },
      orders,
      payments,
      false,
    );
    stops.push(() => uncached.stop());
    const cached = startAuthzPair(
      nginxBinary,
      CACHED,
      { outer: await freePort(), inner: await freePort(), innerOutbound: await freePort(), app: appPort },
      orders,
      payments,
      true,
    );
    stops.push(() => cached.stop());

    const variants: Variant[] = [
      { name: 'direct', url: `http://127.0.0.1:${appPort}${PATH}`, headers: {}, proxies: [] },
      {
        name: BASELINE,
        url: `http://127.0.0.1:${outer.port}${PATH}`,
        headers: {},
        proxies: [
          { name: 'outer nginx', pids: outer.pids },
          { name: 'inner nginx', pids: inner.pids },
        ],
      },
      uncached.variant,
      cached.variant,
    ];
    await warmUp(variants, connections);
    const results = await measureRounds(variants, { rounds, durationSec, connections });
    const grpc = await grpcCheckLatency(payments, orders, options.quick ? 1 : 4, 8);
    return report(variants, results, grpc, { rounds, durationSec, connections }, baselines);
  } finally {
    for (const stop of stops.reverse()) await stop();
    await control.stop();
    rmSync(SOCKETS, { recursive: true, force: true });
  }
}

function report(
  variants: readonly Variant[],
  results: ReadonlyMap<string, Measurement[]>,
  grpc: { checks: number; p50Ms: number; p99Ms: number; perSecond: number },
  settings: { rounds: number; durationSec: number; connections: number },
  baselines: Baselines,
): ScenarioResult {
  const medians = new Map(variants.map((v) => [v.name, medianRounds(results.get(v.name) as Measurement[])]));
  const nginx = medians.get(BASELINE) as Measurement;
  const direct = medians.get('direct') as Measurement;
  const rows: Row[] = variants.map((v) => {
    const m = medians.get(v.name) as Measurement;
    return {
      path: v.name,
      'saturated req/s': Math.round(m.rps),
      '× nginx pair': ratio(m.rps, nginx.rps),
      'p50 ms @1k/s': round(m.p50Ms),
      'p99 ms @1k/s': round(m.p99Ms),
      'added p99 ms': round(m.p99Ms - direct.p99Ms),
      'CPU s/1k req @1k/s, per process': m.cpuFixed.map((c) => c.toFixed(3)).join(' + ') || '—',
      'RSS MB, per process': m.rss.map((b) => (b / 2 ** 20).toFixed(1)).join(' + ') || '—',
      errors: m.errors,
    };
  });
  const uncached = medians.get(UNCACHED) as Measurement;
  const cached = medians.get(CACHED) as Measurement;
  const withCache = ratio(cached.rps, nginx.rps);
  const without = ratio(uncached.rps, nginx.rps);
  // Each request is one check at each authorizer: CPU per 1,000 requests is CPU per 1,000 checks.
  const [outboundCpu, inboundCpu] = [uncached.cpuFixed[2] ?? 0, uncached.cpuFixed[3] ?? 0];
  const checks: Check[] = [
    {
      target: "nginx pair asking baton authz per request, with nginx's decision cache ≥ 0.8× the plain nginx pair",
      measured: `${withCache}×`,
      met: withCache >= 0.8,
    },
    {
      target: 'nginx pair asking baton authz per request, no decision cache ≥ 0.5× the plain nginx pair',
      measured: `${without}×`,
      met: without >= 0.5,
    },
    {
      target: 'baton authz CPU-s per 1,000 checks at 1,000 req/s, evenly spaced (informational)',
      measured: `${outboundCpu.toFixed(3)} s outbound (token for the target, cached exchange), ${inboundCpu.toFixed(3)} s inbound (verify, chain, handle)`,
      met: true,
    },
    {
      target: 'gRPC Check p99 on loopback, inbound check, warm caches, 8 in flight (informational)',
      measured: `p99 ${grpc.p99Ms.toFixed(3)} ms, p50 ${grpc.p50Ms.toFixed(3)} ms, ${Math.round(grpc.perSecond)} checks/s`,
      met: true,
    },
  ];
  const title = 'Scenario 7 — baton inside nginx: an nginx pair asking baton authz per request vs the plain nginx pair';
  const markdown = writeResults('authz', title, rows, {
    ...settings,
    fixedRate: FIXED_RATE,
    nginx:
      'Debian nginx, one worker per hop, defaults but upstream keep-alive (baselines); examples/nginx/ in plaintext for the authz pairs',
    baselines,
    authzLogLevel: 'warn',
    grpc: { ...grpc, p50Ms: round(grpc.p50Ms), p99Ms: round(grpc.p99Ms) },
    checks,
  });
  return {
    name: 'authz',
    title,
    rows,
    checks,
    markdown: `${markdown}\ngRPC Check (inbound, loopback, 8 in flight): p50 ${grpc.p50Ms.toFixed(3)} ms, p99 ${grpc.p99Ms.toFixed(3)} ms, ${Math.round(grpc.perSecond)} checks/s\n`,
  };
}

if (import.meta.main) console.log((await run({ quick: process.env.BENCH_QUICK === '1' })).markdown);
