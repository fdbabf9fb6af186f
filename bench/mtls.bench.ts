/**
 * Scenario 6, what mTLS costs (#14): the same trivial app on loopback called
 *   (a) directly,
 *   (b) through a pair of nginx hops in plaintext,
 *   (c) through a pair of nginx hops with mTLS on the middle hop: the outer
 *       nginx takes plain HTTP from the client (as an app calls its sidecar's
 *       outbound port) and proxies over TLS 1.3 with a client certificate,
 *       upstream keep-alive and session reuse, to an inner nginx that
 *       requires and verifies the client certificate,
 *   (d) through baton's outbound + inbound pair in plaintext,
 *   (e) through the same pair in mTLS, the default (`startMesh()`).
 * Every certificate comes from the development CA (src/identity/dev-ca.ts):
 * the nginx pair uses orders' and payments' identities of the mTLS mesh.
 * Throughput, latency at 1,000 req/s and CPU per 1,000 requests are measured
 * as in scenario 1 (./hop.bench.ts, `measureVariant`), variants alternating
 * inside each round.
 *
 * Then the handshake rate under churn: new TLS connections with a client
 * certificate and no session reuse, to payments' inbound sidecar port and to
 * the inner nginx, each bounded in count and time, at a small concurrency.
 * A handshake counts once the server's first session ticket arrives: in TLS
 * 1.3 the client's Finished (and certificate) reach the server after the
 * client already sees `secureConnect`, and the server sends its tickets only
 * once it has verified them, so the ticket proves the server did the whole
 * handshake. CPU is the server process's, per 1,000 handshakes.
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { Agent, request } from 'undici';
import { startMesh, type Mesh } from '../src/demo/mesh.ts';
import { freePort } from '../test/helpers/net.ts';
import { benchBundle, IMAGE_ENV } from './lib/bundle.ts';
import { addedP99Check } from './lib/added-latency.ts';
import {
  ensureNginx,
  type NginxIdentity,
  type NginxProxy,
  startNginxProxy,
  startNginxTlsInner,
  startNginxTlsOuter,
} from './lib/nginx.ts';
import { sampleProcesses } from './lib/proc-stats.ts';
import {
  announceBaselines,
  type Baselines,
  markdownTable,
  medianRounds,
  RESULTS_DIR,
  type Row,
  writeResults,
} from './lib/report.ts';
import { type BenchOptions, type Check, ratio, round, type ScenarioResult } from './lib/scenario.ts';
import { BENCH_POLICY, batonPair, measureRounds, type Measurement, type Variant, warmUp } from './hop.bench.ts';

const FIXED_RATE = 1000;
const PATH = '/bench';
const NGINX_PLAIN = 'nginx pair, plaintext';
const NGINX_MTLS = 'nginx pair, mTLS';
const BATON_PLAIN = 'baton pair, plaintext';
const BATON_MTLS = 'baton pair, mTLS';

export interface HandshakeOptions {
  readonly port: number;
  /** The client's certificate, key and the bundle it verifies the server with. */
  readonly identity: NginxIdentity;
  /** The server process(es), for CPU. */
  pids(): number[];
  readonly maxConnections: number;
  readonly maxSeconds: number;
  readonly concurrency: number;
}

export interface HandshakeResult {
  readonly completed: number;
  readonly errors: number;
  readonly seconds: number;
  readonly perSecond: number;
  /** Server CPU seconds per 1,000 completed handshakes. */
  readonly cpuPerThousand: number;
}

/** Full mTLS handshakes, every connection new (no session offered), until the count or the time runs out. */
export async function measureHandshakes(options: HandshakeOptions): Promise<HandshakeResult> {
  const cert = readFileSync(options.identity.certFile, 'utf8');
  const key = readFileSync(options.identity.keyFile, 'utf8');
  const ca = readFileSync(options.identity.bundleFile, 'utf8');
  const deadline = performance.now() + options.maxSeconds * 1000;
  let started = 0;
  let completed = 0;
  let errors = 0;
  const one = async (): Promise<void> => {
    if (await handshake(options.port, { cert, key, ca })) completed++;
    else errors++;
  };
  const worker = async (): Promise<void> => {
    while (started < options.maxConnections && performance.now() < deadline) {
      started++;
      await one();
    }
  };
  const before = sampleProcesses(options.pids());
  const t0 = performance.now();
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  const seconds = (performance.now() - t0) / 1000;
  const after = sampleProcesses(options.pids());
  return {
    completed,
    errors,
    seconds,
    perSecond: completed / seconds,
    cpuPerThousand: ((after.cpuSeconds - before.cpuSeconds) / Math.max(1, completed)) * 1000,
  };
}

/**
 * One new TLS 1.3 connection, no session offered: true once the server's
 * first session ticket arrives (it has verified the client's Finished and
 * certificate), false on an error, a close or 2 s without a ticket.
 */
export function handshake(
  port: number,
  tls: { readonly cert?: string; readonly key?: string; readonly ca: string },
): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    let socket: TLSSocket | undefined = undefined;
    let settled = false;
    const timer = setTimeout(() => finish(false), 2000);
    // Once per connection: destroying the socket after the ticket also emits 'close'.
    const finish = (ok: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket?.destroy();
      resolve(ok);
    };
    // 127.0.0.1 is an IP SAN of every development certificate, so the default identity check applies.
    socket = connect({ host: '127.0.0.1', port, ...tls, minVersion: 'TLSv1.3', rejectUnauthorized: true });
    socket.once('session', () => finish(true));
    socket.once('error', () => finish(false));
    socket.once('close', () => finish(false));
  });
}

/**
 * Whether a request without a client certificate is refused: baton fails the
 * TLS handshake; nginx's `ssl_verify_client on` completes it and answers 400
 * ("No required SSL certificate was sent"), having verified nothing.
 */
async function refusesWithoutCertificate(port: number, ca: string): Promise<boolean> {
  const dispatcher = new Agent({ connect: { ca, rejectUnauthorized: true } });
  try {
    const response = await request(`https://127.0.0.1:${port}${PATH}`, { dispatcher, headers: { host: 'payments' } });
    await response.body.dump();
    return response.statusCode === 400;
  } catch {
    return true;
  } finally {
    await dispatcher.close();
  }
}

export async function run(options: BenchOptions): Promise<ScenarioResult> {
  const rounds = options.quick ? 1 : 3;
  const durationSec = options.quick ? 1 : 4;
  const connections = 32;
  const handshakeLimits = options.quick
    ? { maxConnections: 300, maxSeconds: 0.5 }
    : { maxConnections: 2000, maxSeconds: 2 };
  const nginxBinary = ensureNginx();
  const bundle = await benchBundle();
  const env = { BATON_LOG_LEVEL: 'warn', ...IMAGE_ENV };
  const meshes: Mesh[] = [];
  const proxies: NginxProxy[] = [];
  try {
    const mtlsMesh = await startMesh({ policyFile: BENCH_POLICY, env, entry: bundle.baton });
    meshes.push(mtlsMesh);
    const app = mtlsMesh.services.payments.app;
    // The same payments app behind every variant.
    const plainMesh = await startMesh({
      policyFile: BENCH_POLICY,
      env,
      entry: bundle.baton,
      transport: 'plaintext',
      apps: { payments: app },
    });
    meshes.push(plainMesh);
    const ids = mtlsMesh.identities;
    if (ids === undefined) throw new Error('bench: the mTLS mesh has no identities');
    const identity = (service: string): NginxIdentity => ({
      certFile: join(ids.dir, service, 'tls.crt'),
      keyFile: join(ids.dir, service, 'tls.key'),
      bundleFile: join(ids.dir, service, 'ca.crt'),
    });

    const plainInner = startNginxProxy(nginxBinary, await freePort(), app);
    proxies.push(plainInner);
    const plainOuter = startNginxProxy(nginxBinary, await freePort(), plainInner.port);
    proxies.push(plainOuter);
    const tlsInner = startNginxTlsInner(nginxBinary, await freePort(), app, identity('payments'));
    proxies.push(tlsInner);
    const tlsOuter = startNginxTlsOuter(nginxBinary, await freePort(), tlsInner.port, identity('orders'), 'payments');
    proxies.push(tlsOuter);
    const baselines: Baselines = {
      'outer nginx, plaintext pair': plainOuter.config,
      'inner nginx, plaintext pair': plainInner.config,
      'outer nginx, mTLS pair': tlsOuter.config,
      'inner nginx, mTLS pair': tlsInner.config,
    };
    announceBaselines('mtls', baselines);

    const nginxPair = (name: string, outer: NginxProxy, inner: NginxProxy): Variant => ({
      name,
      url: `http://127.0.0.1:${outer.port}${PATH}`,
      headers: {},
      proxies: [
        { name: 'outer nginx', pids: outer.pids },
        { name: 'inner nginx', pids: inner.pids },
      ],
    });
    const variants: Variant[] = [
      { name: 'direct', url: `http://127.0.0.1:${app}${PATH}`, headers: {}, proxies: [] },
      nginxPair(NGINX_PLAIN, plainOuter, plainInner),
      nginxPair(NGINX_MTLS, tlsOuter, tlsInner),
      batonPair(plainMesh, BATON_PLAIN),
      batonPair(mtlsMesh, BATON_MTLS),
    ];
    // Warm caches, JIT and the keep-alive TLS connections on every path before anything counts.
    await warmUp(variants, connections);
    const results = await measureRounds(variants, { rounds, durationSec, connections });

    // Handshakes under churn: orders' certificate against payments' inbound sidecar and against the inner nginx (payments' certificate), alternating.
    const handshakeTargets = [
      {
        name: 'baton inbound (payments sidecar)',
        port: mtlsMesh.services.payments.inbound,
        pids: () => [mtlsMesh.process('payments-sidecar').child.pid as number],
      },
      { name: 'inner nginx (ssl_verify_client on)', port: tlsInner.port, pids: tlsInner.pids },
    ];
    // The measurement is of mutual TLS only if a client without a certificate is refused.
    for (const target of handshakeTargets) {
      if (!(await refusesWithoutCertificate(target.port, ids.bundle)))
        throw new Error(`bench: ${target.name} served a client without a certificate; this is not mTLS`);
    }
    const handshakes = new Map<string, HandshakeResult[]>(handshakeTargets.map((t) => [t.name, []]));
    for (let r = 0; r < rounds; r++) {
      for (const target of r % 2 === 0 ? handshakeTargets : [...handshakeTargets].reverse()) {
        (handshakes.get(target.name) as HandshakeResult[]).push(
          await measureHandshakes({
            port: target.port,
            pids: target.pids,
            identity: identity('orders'),
            concurrency: 12,
            ...handshakeLimits,
          }),
        );
      }
    }
    return report(
      variants,
      results,
      handshakes,
      { rounds, durationSec, connections, handshakeConcurrency: 12, ...handshakeLimits },
      baselines,
    );
  } finally {
    for (const proxy of proxies) proxy.stop();
    for (const mesh of meshes.reverse()) await mesh.stop();
  }
}

function medianHandshake(results: readonly HandshakeResult[]): HandshakeResult {
  const sorted = [...results].sort((a, b) => a.perSecond - b.perSecond);
  const mid = sorted[Math.floor((sorted.length - 1) / 2)] as HandshakeResult;
  return { ...mid, errors: results.reduce((sum, r) => sum + r.errors, 0) };
}

const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);

function report(
  variants: readonly Variant[],
  results: ReadonlyMap<string, Measurement[]>,
  handshakeResults: ReadonlyMap<string, HandshakeResult[]>,
  settings: Record<string, number>,
  baselines: Baselines,
): ScenarioResult {
  const medians = new Map(variants.map((v) => [v.name, medianRounds(results.get(v.name) as Measurement[])]));
  const get = (name: string): Measurement => medians.get(name) as Measurement;
  const direct = get('direct');
  const nginxPlain = get(NGINX_PLAIN);
  const nginxMtls = get(NGINX_MTLS);
  const batonPlain = get(BATON_PLAIN);
  const batonMtls = get(BATON_MTLS);
  const plaintextOf: Readonly<Record<string, Measurement>> = { [NGINX_MTLS]: nginxPlain, [BATON_MTLS]: batonPlain };
  const rows: Row[] = variants.map((v) => {
    const m = get(v.name);
    const plain = plaintextOf[v.name];
    return {
      path: v.name,
      'saturated req/s': Math.round(m.rps),
      '× nginx pair': ratio(m.rps, nginxPlain.rps),
      'p50 ms @1k/s': round(m.p50Ms),
      'p99 ms @1k/s': round(m.p99Ms),
      'added p99 ms': round(m.p99Ms - direct.p99Ms),
      'TLS adds p99 ms': plain === undefined ? '—' : round(m.p99Ms - plain.p99Ms),
      'CPU s/1k req @1k/s, per proxy': m.cpuFixed.map((c) => c.toFixed(3)).join(' + ') || '—',
      'TLS CPU × plaintext, both proxies': plain === undefined ? '—' : ratio(sum(m.cpuFixed), sum(plain.cpuFixed)),
      'RSS MB, per proxy': m.rss.map((b) => (b / 2 ** 20).toFixed(1)).join(' + ') || '—',
      'evenly spaced sends @1k/s': m.evenShare,
      errors: m.errors,
    };
  });
  const handshakeMedians = new Map([...handshakeResults].map(([name, list]) => [name, medianHandshake(list)]));
  const [batonHs, nginxHs] = [...handshakeMedians.values()] as [HandshakeResult, HandshakeResult];
  const handshakeRows: Row[] = [...handshakeMedians].map(([name, h]) => ({
    'server (new connection each, client certificate, no resumption)': name,
    'handshakes/s': Math.round(h.perSecond),
    '× inner nginx': ratio(h.perSecond, nginxHs.perSecond),
    'server CPU s/1k handshakes': round(h.cpuPerThousand),
    completed: h.completed,
    seconds: round(h.seconds, 2),
    errors: h.errors,
  }));

  const batonCpuRatio = ratio(sum(batonMtls.cpuFixed), sum(batonPlain.cpuFixed));
  const nginxCpuRatio = ratio(sum(nginxMtls.cpuFixed), sum(nginxPlain.cpuFixed));
  const checks: Check[] = [
    {
      target:
        'mTLS multiplies the baton pair’s CPU per 1,000 requests (both sidecars, 1,000 req/s) by no more than it multiplies the nginx pair’s',
      measured: `baton ×${batonCpuRatio} (${sum(batonPlain.cpuFixed).toFixed(3)} → ${sum(batonMtls.cpuFixed).toFixed(3)} s), nginx ×${nginxCpuRatio} (${sum(nginxPlain.cpuFixed).toFixed(3)} → ${sum(nginxMtls.cpuFixed).toFixed(3)} s)`,
      met: batonCpuRatio <= nginxCpuRatio,
    },
    // #28: not measured, never met, when the generator fell behind or the direct path's tail dwarfs the hop (./lib/added-latency.ts).
    addedP99Check({
      target: 'baton mTLS pair’s added p99 over direct at 1,000 req/s ≤ 1.5× the nginx mTLS pair’s',
      direct,
      candidate: { ...batonMtls, name: BATON_MTLS },
      baseline: { ...nginxMtls, name: NGINX_MTLS },
      factor: 1.5,
    }),
    {
      target:
        'full mTLS handshakes/s under churn at payments’ inbound sidecar (informational: met when every handshake completed; compare with the inner nginx)',
      measured: `${Math.round(batonHs.perSecond)}/s, ${batonHs.cpuPerThousand.toFixed(3)} CPU-s per 1,000 (${batonHs.errors} failed)`,
      met: batonHs.completed > 0 && batonHs.errors === 0,
    },
    {
      target:
        'full mTLS handshakes/s under churn at the inner nginx (informational: met when every handshake completed)',
      measured: `${Math.round(nginxHs.perSecond)}/s, ${nginxHs.cpuPerThousand.toFixed(3)} CPU-s per 1,000 (${nginxHs.errors} failed)`,
      met: nginxHs.completed > 0 && nginxHs.errors === 0,
    },
  ];
  const title = 'Scenario 6 — mTLS cost: the baton pair and an nginx pair, plaintext and mTLS';
  const handshakeTable = `\n### Handshakes under churn\n\n${markdownTable(handshakeRows)}`;
  const markdown =
    writeResults('mtls', title, rows, {
      ...settings,
      fixedRate: FIXED_RATE,
      arrivals: 'even (clock thread, ./lib/constant-rate.ts)',
      checks,
      handshakes: handshakeRows,
      baselines,
    }) + handshakeTable;
  appendFileSync(join(RESULTS_DIR, 'mtls.md'), handshakeTable);
  return { name: 'mtls', title, rows, checks, markdown };
}

if (import.meta.main) console.log((await run({ quick: process.env.BENCH_QUICK === '1' })).markdown);
