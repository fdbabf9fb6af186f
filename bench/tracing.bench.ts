/**
 * Tracing cost: the baton pair of scenario 1(d) (orders' outbound →
 * payments' inbound, service-identity call, warm caches) in three meshes
 * started side by side in the same run: one with tracing off (no OTEL
 * exporter, the default), one sampling 10% of requests and one sampling
 * every request, both with the parent-based trace-id ratio sampler an
 * operator sets (OTEL_TRACES_SAMPLER=parentbased_traceidratio, ARG 0.1 and
 * 1: orders' outbound sidecar roots the trace and decides, payments' inbound
 * follows its traceparent) and batch-exporting over OTLP/HTTP protobuf to a
 * loopback sink. Variants alternate inside each round so machine drift hits
 * them alike. #28's targets: 10% sampled ≥ 0.95× and 100% ≥ 0.8× the
 * throughput of tracing off.
 *
 * Beside them, the floor: the bare Node.js proxy pair of scenario 1, off and
 * traced with the same SDK setup and one semantic-convention SERVER span per
 * request per proxy (bench/lib/bare-proxy.ts). Its ratio is what the
 * OpenTelemetry JS SDK alone costs a proxy that does nothing else.
 *
 * The sink drains and acknowledges each export without decoding it, so
 * what is measured is the sidecars' cost of making, batching and sending
 * spans, not a collector's.
 */
import { createServer, type Server } from 'node:http';
import { startMesh, type Mesh } from '../src/demo/mesh.ts';
import {
  BENCH_POLICY,
  type BarePair,
  batonPair,
  measureRounds,
  startBarePair,
  type Variant,
  warmUp,
} from './hop.bench.ts';
import { announceProfiled, benchBundle, imageEnv } from './lib/bundle.ts';
import { median, type Row, writeResults } from './lib/report.ts';
import { type BenchOptions, type Check, ratio, round, type ScenarioResult } from './lib/scenario.ts';
import { listenOnLoopback } from '../test/helpers/net.ts';

interface OtlpSink {
  readonly endpoint: string;
  exports(): number;
  bytes(): number;
  close(): Promise<void>;
}

async function startOtlpSink(): Promise<OtlpSink> {
  let exports = 0;
  let bytes = 0;
  const server: Server = createServer((req, res) => {
    req.on('data', (chunk: Buffer) => (bytes += chunk.length));
    req.on('end', () => {
      exports++;
      // An empty ExportTraceServiceResponse: full success.
      res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': 0 });
      res.end();
    });
  });
  await listenOnLoopback(server);
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    exports: () => exports,
    bytes: () => bytes,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export async function run(options: BenchOptions = { quick: process.env.BENCH_QUICK === '1' }): Promise<ScenarioResult> {
  const rounds = options.quick ? 1 : 3;
  const durationSec = options.quick ? 1 : 4;
  const connections = 32;
  const sink = await startOtlpSink();
  const meshes: Mesh[] = [];
  const barePairs: BarePair[] = [];
  try {
    const { baton, bareProxy } = await benchBundle();
    // Plaintext, as the recorded results were measured (startMesh defaults to mTLS since #14).
    const off = await startMesh({
      policyFile: BENCH_POLICY,
      env: imageEnv({ BATON_LOG_LEVEL: 'warn' }),
      entry: baton,
      transport: 'plaintext',
    });
    meshes.push(off);
    announceProfiled('tracing off', off);
    // Sampled with the parent-based ratio sampler and batch-exported to the sink: the baton meshes and the bare pair alike.
    const sampled = (ratioArg: string) => ({
      OTEL_EXPORTER_OTLP_ENDPOINT: sink.endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: ratioArg,
    });
    const tenth = await startMesh({
      policyFile: BENCH_POLICY,
      entry: baton,
      env: imageEnv({ BATON_LOG_LEVEL: 'warn', ...sampled('0.1') }),
      transport: 'plaintext',
    });
    meshes.push(tenth);
    announceProfiled('tracing 10%', tenth);
    const all = await startMesh({
      policyFile: BENCH_POLICY,
      entry: baton,
      env: imageEnv({ BATON_LOG_LEVEL: 'warn', ...sampled('1') }),
      transport: 'plaintext',
    });
    meshes.push(all);
    announceProfiled('tracing 100%', all);
    const app = off.services.payments.app;
    barePairs.push(await startBarePair(bareProxy, app, 'floor: bare Node.js proxy pair, tracing off'));
    barePairs.push(
      await startBarePair(
        bareProxy,
        app,
        'floor: bare Node.js proxy pair, one span per request (100% sampled, batch OTLP export)',
        sampled('1'),
      ),
    );
    const variants: Variant[] = [
      batonPair(off, 'tracing off'),
      batonPair(tenth, 'tracing on, 10% sampled (parent-based ratio, batch OTLP export)'),
      batonPair(all, 'tracing on, 100% sampled (parent-based ratio, batch OTLP export)'),
      ...barePairs.map((pair) => pair.variant),
    ];
    await warmUp(variants, connections);
    const results = await measureRounds(variants, { rounds, durationSec, connections });
    const rows: Row[] = variants.map((variant) => {
      const m = results.get(variant.name) ?? [];
      const cpu = (pick: (x: (typeof m)[number]) => number[]) =>
        round(median(m.map((x) => pick(x).reduce((a, b) => a + b, 0))), 3);
      return {
        variant: variant.name,
        'requests/s (saturated)': Math.round(median(m.map((x) => x.rps))),
        'p50 ms @1k/s': round(median(m.map((x) => x.p50Ms)), 2),
        'p99 ms @1k/s': round(median(m.map((x) => x.p99Ms)), 2),
        'CPU s per 1k req, both proxies (saturated)': cpu((x) => x.cpuSaturated),
        'CPU s per 1k req, both proxies (@1k/s)': cpu((x) => x.cpuFixed),
        errors: m.reduce((a, x) => a + x.errors, 0),
      };
    });
    const [offRow, tenthRow, allRow, bareOffRow, bareOnRow] = rows as [Row, Row, Row, Row, Row];
    const rps = (row: Row): number => Number(row['requests/s (saturated)']);
    const tenthRatio = ratio(rps(tenthRow), rps(offRow));
    const allRatio = ratio(rps(allRow), rps(offRow));
    const floorRatio = ratio(rps(bareOnRow), rps(bareOffRow));
    const checks: Check[] = [
      {
        target: 'spans were exported during the run',
        measured: `${sink.exports()} OTLP exports, ${Math.round(sink.bytes() / 1024)} KiB`,
        met: sink.exports() > 0,
      },
      // What production runs: 1–10% sampled. An unsampled request still extracts and injects trace context and makes a non-recording span.
      {
        target: 'tracing on at 10% sampling ≥ 0.95× the throughput of tracing off (#28)',
        measured: `${tenthRatio}×`,
        met: tenthRatio >= 0.95,
      },
      // The worst case: every request traced, 2 spans per request across the pair (one per sidecar).
      {
        target: 'tracing on at 100% sampling ≥ 0.8× the throughput of tracing off (#28)',
        measured: `${allRatio}× (the bare proxy pair's floor in this run: ${floorRatio}×)`,
        met: allRatio >= 0.8,
      },
      {
        target: 'tracing on at 100% sampling ≥ 0.85× the throughput of tracing off (issue #8)',
        measured: `${allRatio}×`,
        met: allRatio >= 0.85,
      },
    ];
    const markdown = writeResults(
      'tracing',
      'Tracing on vs off: the baton sidecar pair, and a bare Node.js proxy pair as the floor',
      rows,
      { rounds, durationSec, connections, checks },
    );
    return { name: 'tracing', title: 'Tracing on vs off', rows, checks, markdown };
  } finally {
    for (const pair of barePairs) await pair.stop();
    for (const mesh of meshes) await mesh.stop();
    await sink.close();
  }
}

if (import.meta.main) {
  const result = await run();
  console.log(result.markdown);
  for (const check of result.checks) console.log(`${check.met ? '✔' : '✘'} ${check.target}: ${check.measured}`);
}
