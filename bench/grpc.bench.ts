/**
 * Scenario 8, gRPC and fetch through the sidecar pair (#27).
 *
 * gRPC unary: one @grpc/grpc-js server (./lib/grpc-echo.ts, `bench.v1.Echo/Call`,
 * a 100-byte message echoed back) called
 *   (a) directly,
 *   (b) through a pair of nginx `grpc_pass` hops: h2c in and out, upstream
 *       keep-alive, one worker each, nginx's defaults otherwise
 *       (./lib/nginx.ts `startNginxGrpcProxy`; its config is in the results),
 *   (c) through baton's pair: orders' outbound port with `payments` as the
 *       `:authority` → payments' inbound → the server, HTTP/2 on every hop
 *       (plaintext mesh, as scenario 1), a service-identity call the bench
 *       policy allows (`grpc: ["bench.v1.Echo/Call"]`), warm caches,
 *   (d) the floor: two bare node:http2 proxies (./lib/bare-h2-proxy.ts), one
 *       multiplexed session upstream each, no baton work: what the runtime
 *       costs a Node.js gRPC proxy pair before it does anything useful.
 * Load is h2load (./lib/h2load.ts): calls/s at saturation, p50/p99 at a fixed
 * 1,000 calls/s, CPU seconds per 1,000 calls and RSS of every proxy process.
 * h2load cannot read grpc-status, so each path is checked apart: one grpc-js
 * call before the load must come back with the message, and the app counts
 * the calls it served (by the `baton-caller` the inbound sidecar adds): a
 * 200 that h2load saw and the app did not serve is a refused call, counted
 * as an error.
 *
 * fetch and node:http: the same kind of pair (a second mesh with the demo
 * payments app, GET /bench as scenario 1) called through orders' outbound
 * port by Node's `fetch` over a CONNECT tunnel (undici's ProxyAgent: what
 * `NODE_USE_ENV_PROXY=1` with `HTTP_PROXY` sets up) and by `node:http` with
 * absolute-form requests (docs/clients.md), each with 32 requests in flight
 * (./lib/closed-loop.ts). Informational: the ratio says what the client
 * library costs on the same path; there is no target.
 *
 * Variants alternate inside each round, as in scenario 1.
 */
import { appendFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { ProxyAgent } from 'undici';
import { startMesh, type Mesh } from '../src/demo/mesh.ts';
import { freePort } from '../test/helpers/net.ts';
import { BENCH_POLICY, type BarePair, startBarePair } from './hop.bench.ts';
import { announceProfiled, benchBundle, imageEnv } from './lib/bundle.ts';
import { runClosedLoop } from './lib/closed-loop.ts';
import { callEcho, ECHO_PATH, type GrpcEcho, grpcFrame, startGrpcEcho } from './lib/grpc-echo.ts';
import { ensureH2load, type H2loadResult, runH2load } from './lib/h2load.ts';
import { ensureNginx, type NginxProxy, startNginxGrpcProxy } from './lib/nginx.ts';
import { type ProcSample, sampleProcesses } from './lib/proc-stats.ts';
import { announceBaselines, markdownTable, medianRounds, RESULTS_DIR, type Row, writeResults } from './lib/report.ts';
import { type BenchOptions, type Check, ratio, round, type ScenarioResult } from './lib/scenario.ts';

const FIXED_RATE = 1000;
const MESSAGE = Buffer.alloc(100, 'b');
/** h2load: connections, and calls in flight on each (32 in all, as scenario 1's 32 connections). */
const CLIENTS = 4;
const STREAMS = 8;
/** fetch and node:http: requests in flight. */
const CONCURRENCY = 32;
const NGINX_PAIR = 'nginx grpc_pass pair';
const BATON_PAIR = 'baton pair';
const BARE_PAIR = 'floor: bare node:http2 proxy pair';
const FETCH = 'fetch, CONNECT tunnel (undici ProxyAgent)';
const NODE_HTTP = 'node:http, absolute-form';
/** Every mesh process's environment: log level warn, the image's (and BENCH_PROFILE's flag, ./lib/bundle.ts). */
const MESH_ENV = imageEnv({ BATON_LOG_LEVEL: 'warn' });

interface Proxy {
  readonly name: string;
  pids(): number[];
}

interface GrpcVariant {
  readonly name: string;
  /** Where the client connects: host:port. */
  readonly target: string;
  /** The channel authority through a sidecar's outbound port. */
  readonly authority?: string;
  /** The `baton-caller` the app sees on this path ('' when no sidecar is in front of it). */
  readonly caller: string;
  readonly proxies: readonly Proxy[];
}

interface GrpcMeasurement {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** Per proxy: CPU seconds per 1,000 calls at saturation and at the fixed rate; RSS bytes after the fixed-rate run. */
  cpuSaturated: number[];
  cpuFixed: number[];
  rss: number[];
}

interface FetchVariant {
  readonly name: string;
  send(): Promise<boolean>;
}

interface FetchMeasurement {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** Per sidecar: CPU seconds per 1,000 requests. */
  cpu: number[];
}

function sidecars(mesh: Mesh): Proxy[] {
  return [
    { name: 'outbound (orders sidecar)', pids: () => [mesh.process('orders-sidecar').child.pid as number] },
    { name: 'inbound (payments sidecar)', pids: () => [mesh.process('payments-sidecar').child.pid as number] },
  ];
}

const perThousand = (from: readonly ProcSample[], to: readonly ProcSample[], requests: number): number[] =>
  to.map((t, i) => ((t.cpuSeconds - (from[i] as ProcSample).cpuSeconds) / Math.max(1, requests)) * 1000);

/** One h2load run, with the calls the app served during it: a 200 it did not serve was refused on the way (HTTP 200, grpc-status ≠ 0). */
async function h2loadChecked(
  h2load: string,
  variant: GrpcVariant,
  echo: GrpcEcho,
  durationSec: number,
  rate?: number,
): Promise<H2loadResult & { unserved: number }> {
  const served = echo.callsFrom(variant.caller);
  const result = await runH2load(h2load, {
    url: `http://${variant.target}${ECHO_PATH}`,
    ...(variant.authority === undefined ? {} : { authority: variant.authority }),
    body: grpcFrame(MESSAGE),
    durationSec,
    clients: CLIENTS,
    streams: STREAMS,
    ...(rate === undefined ? {} : { rate }),
  });
  return { ...result, unserved: Math.max(0, result.ok - (echo.callsFrom(variant.caller) - served)) };
}

async function measureGrpc(
  h2load: string,
  variant: GrpcVariant,
  echo: GrpcEcho,
  durationSec: number,
): Promise<GrpcMeasurement> {
  const before = variant.proxies.map((p) => sampleProcesses(p.pids()));
  const saturated = await h2loadChecked(h2load, variant, echo, durationSec);
  const middle = variant.proxies.map((p) => sampleProcesses(p.pids()));
  const fixed = await h2loadChecked(h2load, variant, echo, durationSec, FIXED_RATE);
  const after = variant.proxies.map((p) => sampleProcesses(p.pids()));
  return {
    rps: saturated.rps,
    p50Ms: fixed.p50Ms,
    p99Ms: fixed.p99Ms,
    errors: saturated.errors + saturated.unserved + fixed.errors + fixed.unserved,
    cpuSaturated: perThousand(before, middle, saturated.ok),
    cpuFixed: perThousand(middle, after, fixed.ok),
    rss: after.map((s) => s.rssBytes),
  };
}

async function measureFetch(
  variant: FetchVariant,
  proxies: readonly Proxy[],
  durationSec: number,
): Promise<FetchMeasurement> {
  const before = proxies.map((p) => sampleProcesses(p.pids()));
  const result = await runClosedLoop({ concurrency: CONCURRENCY, durationSec, send: variant.send });
  const after = proxies.map((p) => sampleProcesses(p.pids()));
  return {
    rps: result.rps,
    p50Ms: result.p50Ms,
    p99Ms: result.p99Ms,
    errors: result.errors,
    cpu: perThousand(before, after, result.ok),
  };
}

/** The gRPC half: three paths to one grpc-js server, alternating inside each round. */
async function runGrpc(options: {
  rounds: number;
  durationSec: number;
  h2load: string;
  nginx: string;
  baton: string;
  bareH2Proxy: string;
}): Promise<{
  variants: GrpcVariant[];
  results: Map<string, GrpcMeasurement[]>;
  nginxConfig: string[];
  h2loadCommand: string;
}> {
  const echo = await startGrpcEcho();
  const proxies: NginxProxy[] = [];
  let mesh: Mesh | undefined;
  let bare: BarePair | undefined;
  try {
    const inner = startNginxGrpcProxy(options.nginx, await freePort(), echo.port);
    proxies.push(inner);
    const outer = startNginxGrpcProxy(options.nginx, await freePort(), inner.port);
    proxies.push(outer);
    mesh = await startMesh({
      policyFile: BENCH_POLICY,
      env: MESH_ENV,
      entry: options.baton,
      transport: 'plaintext',
      apps: { payments: echo.port },
    });
    announceProfiled('gRPC', mesh);
    // The floor: what a Node.js gRPC proxy pair costs doing nothing but forward (./lib/bare-h2-proxy.ts).
    bare = await startBarePair(options.bareH2Proxy, echo.port, BARE_PAIR);
    const variants: GrpcVariant[] = [
      { name: 'direct', target: `127.0.0.1:${echo.port}`, caller: '', proxies: [] },
      {
        name: NGINX_PAIR,
        target: `127.0.0.1:${outer.port}`,
        caller: '',
        proxies: [
          { name: 'outer nginx', pids: outer.pids },
          { name: 'inner nginx', pids: inner.pids },
        ],
      },
      {
        name: BATON_PAIR,
        target: `127.0.0.1:${mesh.services.orders.outbound}`,
        authority: 'payments',
        caller: 'orders',
        proxies: sidecars(mesh),
      },
      {
        name: BARE_PAIR,
        target: new URL(bare.variant.url).host,
        caller: '',
        proxies: bare.variant.proxies,
      },
    ];
    announceBaselines('grpc', {
      'outer nginx (grpc_pass pair)': outer.config,
      'inner nginx (grpc_pass pair)': inner.config,
    });
    let h2loadCommand = '';
    for (const variant of variants) {
      // grpc-status is invisible to h2load: one real gRPC call per path first, its reply checked, and served by the app as this path's caller.
      const served = echo.callsFrom(variant.caller);
      const reply = await callEcho(variant.target, MESSAGE, variant.authority);
      if (!reply.equals(MESSAGE) || echo.callsFrom(variant.caller) !== served + 1)
        throw new Error(
          `bench: ${variant.name}: the check call did not come back as sent from the app with baton-caller '${variant.caller}'`,
        );
      // Warm caches (the service token) and JIT before anything counts.
      const warm = await h2loadChecked(options.h2load, variant, echo, 1);
      if (warm.ok === 0 || warm.errors + warm.unserved > 0)
        throw new Error(
          `bench: ${variant.name} did not serve every call while warming up (${warm.ok} answered 200, ${warm.errors} not, ${warm.unserved} of those not served by the app)`,
        );
      if (variant.name === BATON_PAIR)
        h2loadCommand = warm.command.replace(/--duration 1/, `--duration ${options.durationSec}`);
    }
    const results = new Map<string, GrpcMeasurement[]>(variants.map((v) => [v.name, []]));
    for (let r = 0; r < options.rounds; r++) {
      for (const variant of r % 2 === 0 ? variants : [...variants].reverse()) {
        (results.get(variant.name) as GrpcMeasurement[]).push(
          await measureGrpc(options.h2load, variant, echo, options.durationSec),
        );
      }
    }
    return { variants, results, nginxConfig: [outer.config, inner.config], h2loadCommand };
  } finally {
    for (const proxy of proxies) proxy.stop();
    await bare?.stop();
    await mesh?.stop();
    echo.close();
  }
}

/** The fetch half: two client libraries through one baton pair, alternating inside each round. */
async function runFetch(options: {
  rounds: number;
  durationSec: number;
  baton: string;
}): Promise<{ variants: FetchVariant[]; results: Map<string, FetchMeasurement[]> }> {
  const mesh = await startMesh({
    policyFile: BENCH_POLICY,
    env: MESH_ENV,
    entry: options.baton,
    transport: 'plaintext',
  });
  announceProfiled('fetch', mesh);
  const outbound = mesh.services.orders.outbound;
  const tunnel = new ProxyAgent(`http://127.0.0.1:${outbound}`);
  const agent = new HttpAgent({ keepAlive: true, maxSockets: CONCURRENCY });
  try {
    // Node's own fetch, as apps call it; the dispatcher is what NODE_USE_ENV_PROXY=1 would install from HTTP_PROXY.
    const viaFetch = async (): Promise<string> => {
      const response = await fetch('http://payments/bench', { dispatcher: tunnel } as RequestInit);
      const body = await response.text();
      return response.status === 200 ? body : '';
    };
    const viaHttp = (): Promise<string> =>
      new Promise((resolve, reject) => {
        httpRequest(
          { host: '127.0.0.1', port: outbound, path: 'http://payments/bench', headers: { host: 'payments' }, agent },
          (response) => {
            let body = '';
            response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
            response.on('end', () => resolve(response.statusCode === 200 ? body : ''));
            response.on('error', reject);
          },
        )
          .on('error', reject)
          .end();
      });
    const variants: FetchVariant[] = [
      { name: FETCH, send: async () => (await viaFetch()) !== '' },
      { name: NODE_HTTP, send: async () => (await viaHttp()) !== '' },
    ];
    for (const [variant, once] of [
      [FETCH, viaFetch],
      [NODE_HTTP, viaHttp],
    ] as const) {
      // The answer must be payments' app, called by orders: the pair, not some other path.
      const hop = JSON.parse((await once()) || '{}') as { service?: string; caller?: string };
      if (hop.service !== 'payments' || hop.caller !== 'orders')
        throw new Error(
          `bench: ${variant} through orders' outbound port did not reach payments as orders (saw ${JSON.stringify(hop)})`,
        );
    }
    for (const variant of variants) {
      const warm = await runClosedLoop({ concurrency: CONCURRENCY, durationSec: 1, send: variant.send });
      if (warm.ok === 0 || warm.errors > 0)
        throw new Error(`bench: ${variant.name} did not answer 200 while warming up (${warm.errors} errors)`);
    }
    const results = new Map<string, FetchMeasurement[]>(variants.map((v) => [v.name, []]));
    for (let r = 0; r < options.rounds; r++) {
      for (const variant of r % 2 === 0 ? variants : [...variants].reverse()) {
        (results.get(variant.name) as FetchMeasurement[]).push(
          await measureFetch(variant, sidecars(mesh), options.durationSec),
        );
      }
    }
    return { variants, results };
  } finally {
    agent.destroy();
    await tunnel.close();
    await mesh.stop();
  }
}

export async function run(options: BenchOptions): Promise<ScenarioResult> {
  const rounds = options.quick ? 1 : 3;
  const durationSec = options.quick ? 1 : 4;
  const nginx = ensureNginx();
  const h2load = ensureH2load();
  const bundle = await benchBundle();
  const grpc = await runGrpc({
    rounds,
    durationSec,
    h2load,
    nginx,
    baton: bundle.baton,
    bareH2Proxy: bundle.bareH2Proxy,
  });
  const fetched = await runFetch({ rounds, durationSec, baton: bundle.baton });
  return report(grpc, fetched, { rounds, durationSec });
}

function report(
  grpc: {
    variants: readonly GrpcVariant[];
    results: ReadonlyMap<string, GrpcMeasurement[]>;
    nginxConfig: readonly string[];
    h2loadCommand: string;
  },
  fetched: { variants: readonly FetchVariant[]; results: ReadonlyMap<string, FetchMeasurement[]> },
  settings: { rounds: number; durationSec: number },
): ScenarioResult {
  const medians = new Map(
    grpc.variants.map((v) => [v.name, medianRounds(grpc.results.get(v.name) as GrpcMeasurement[])]),
  );
  const direct = medians.get('direct') as GrpcMeasurement;
  const nginxPair = medians.get(NGINX_PAIR) as GrpcMeasurement;
  const baton = medians.get(BATON_PAIR) as GrpcMeasurement;
  const megabytes = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);
  const rows: Row[] = grpc.variants.map((v) => {
    const m = medians.get(v.name) as GrpcMeasurement;
    return {
      path: v.name,
      'saturated calls/s': Math.round(m.rps),
      '× nginx pair': ratio(m.rps, nginxPair.rps),
      'p50 ms @1k/s': round(m.p50Ms),
      'p99 ms @1k/s': round(m.p99Ms),
      'added p99 ms': round(m.p99Ms - direct.p99Ms),
      'CPU s/1k calls @1k/s, per proxy': m.cpuFixed.map((c) => c.toFixed(3)).join(' + ') || '—',
      'CPU s/1k calls saturated, per proxy': m.cpuSaturated.map((c) => c.toFixed(3)).join(' + ') || '—',
      'RSS MB, per proxy': m.rss.map(megabytes).join(' + ') || '—',
      errors: m.errors,
    };
  });
  const fetchMedians = new Map(
    fetched.variants.map((v) => [v.name, medianRounds(fetched.results.get(v.name) as FetchMeasurement[])]),
  );
  const viaFetch = fetchMedians.get(FETCH) as FetchMeasurement;
  const viaHttp = fetchMedians.get(NODE_HTTP) as FetchMeasurement;
  const fetchRows: Row[] = fetched.variants.map((v) => {
    const m = fetchMedians.get(v.name) as FetchMeasurement;
    return {
      client: v.name,
      [`req/s, ${CONCURRENCY} in flight`]: Math.round(m.rps),
      '× node:http': ratio(m.rps, viaHttp.rps),
      'p50 ms': round(m.p50Ms),
      'p99 ms': round(m.p99Ms),
      'CPU s/1k req, per sidecar': m.cpu.map((c) => c.toFixed(3)).join(' + '),
      errors: m.errors,
    };
  });
  const throughput = ratio(baton.rps, nginxPair.rps);
  const grpcErrors = [...medians.values()].reduce((sum, m) => sum + m.errors, 0);
  const fetchRatio = ratio(viaFetch.rps, viaHttp.rps);
  const checks: Check[] = [
    {
      target: 'gRPC unary: baton pair throughput ≥ 0.5× the nginx grpc_pass pair',
      measured: `${throughput}× (${Math.round(baton.rps)} against ${Math.round(nginxPair.rps)} calls/s)`,
      met: throughput >= 0.5,
    },
    {
      target:
        'gRPC unary: every path served every call it answered 200 (h2load cannot see grpc-status; the app counts what it served)',
      measured: `${grpcErrors} calls not answered or not served`,
      met: grpcErrors === 0,
    },
    {
      target:
        'fetch through the outbound port (CONNECT tunnel) against node:http through it (informational, no target: met when both ran without errors)',
      measured: `${fetchRatio}× (${Math.round(viaFetch.rps)} against ${Math.round(viaHttp.rps)} req/s)`,
      met: viaFetch.errors + viaHttp.errors === 0,
    },
  ];
  const title = 'Scenario 8 — gRPC and fetch through the sidecar pair';
  const fetchTable = `\n### fetch and node:http through the outbound port (informational)\n\n${markdownTable(fetchRows)}`;
  const markdown =
    writeResults('grpc', title, rows, {
      ...settings,
      messageBytes: MESSAGE.length,
      h2load: { clients: CLIENTS, streamsPerClient: STREAMS, command: grpc.h2loadCommand },
      fixedRate: FIXED_RATE,
      baselines: {
        'outer nginx (grpc_pass pair)': grpc.nginxConfig[0] as string,
        'inner nginx (grpc_pass pair)': grpc.nginxConfig[1] as string,
      },
      fetchConcurrency: CONCURRENCY,
      checks,
      fetch: fetchRows,
    }) + fetchTable;
  appendFileSync(join(RESULTS_DIR, 'grpc.md'), fetchTable);
  return { name: 'grpc', title, rows, checks, markdown };
}

if (import.meta.main) console.log((await run({ quick: process.env.BENCH_QUICK === '1' })).markdown);
