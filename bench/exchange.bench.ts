/**
 * Scenario 3, exchange: the sidecar's exchange client (src/sidecar/exchange)
 * against a real `baton sts` process. Miss path (a new subject token each
 * call, one STS round trip) vs hit path, in process and from Redis (a
 * replica whose own cache is cold); 100 concurrent misses on one key with the
 * STS calls counted at the dispatcher; and a steady state driven through
 * several refresh-ahead windows on a simulated clock, to show no caller
 * waits for the STS. STS exchanges per second come from ./sts.bench.ts.
 */
import { setImmediate as yieldToIo } from 'node:timers/promises';
import { Agent, type Dispatcher } from 'undici';
import { TokenType } from '../src/core/token-types.ts';
import { createTokenExchanger, type ExchangeClient } from '../src/sidecar/exchange/exchanger.ts';
import { createTokenCache, type TokenCache } from '../src/sidecar/exchange/token-cache.ts';
import { createLogger } from '../src/telemetry/logger.ts';
import { startRedis, writeMeshRedisSecrets } from '../test/helpers/redis.ts';
import { loadSealKeys } from '../src/sidecar/exchange/token-seal.ts';
import { SECRETS } from '../test/helpers/sts.ts';
import { exchangeConfig } from '../test/helpers/sts-stand-in.ts';
import { type Row, writeResults } from './lib/report.ts';
import { type BenchOptions, type Check, round, type ScenarioResult } from './lib/scenario.ts';
import { startBenchSts } from './sts.bench.ts';
import { loadRedis } from '../src/redis/client.ts';

const logger = createLogger({ name: 'bench', level: 'silent' });

interface Timings {
  readonly count: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly opsPerSecond: number;
}

function summarise(latenciesMs: number[], elapsedMs: number): Timings {
  latenciesMs.sort((a, b) => a - b);
  const at = (p: number): number =>
    latenciesMs[Math.min(latenciesMs.length - 1, Math.floor(latenciesMs.length * p))] as number;
  return {
    count: latenciesMs.length,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    opsPerSecond: latenciesMs.length / (elapsedMs / 1000),
  };
}

async function timeSequential(count: number, op: (i: number) => Promise<unknown>): Promise<Timings> {
  const latencies: number[] = [];
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await op(i);
    latencies.push(performance.now() - t0);
  }
  return summarise(latencies, performance.now() - started);
}

/** An undici Agent that counts the requests it dispatches: every one is an STS round trip. */
function countingDispatcher(): { dispatcher: Dispatcher; calls(): number; close(): Promise<void> } {
  const agent = new Agent({ connections: 32 });
  let calls = 0;
  const dispatcher = agent.compose((dispatch) => (opts, handler) => {
    calls++;
    return dispatch(opts, handler);
  });
  return { dispatcher, calls: () => calls, close: () => agent.close() };
}

export async function run(options: BenchOptions): Promise<ScenarioResult> {
  const n = options.quick ? 50 : 400;
  const hits = options.quick ? 2_000 : 50_000;
  const sts = await startBenchSts();
  // As deployed: an ACL user per service, values sealed (AES-256-GCM) before they reach Redis.
  const redisSecrets = await writeMeshRedisSecrets(['gateway']);
  const redis = await startRedis({ aclFile: redisSecrets.aclFile });
  const closers: Array<() => Promise<void>> = [];
  const exchangerWith = (
    cache: TokenCache,
    extra: { dispatcher?: Dispatcher; now?: () => number } = {},
  ): ExchangeClient => {
    const exchanger = createTokenExchanger({
      tokenEndpoint: `${sts.url}/token`,
      clientId: 'gateway',
      clientSecret: SECRETS.gateway,
      authMethod: 'client_secret_basic',
      config: exchangeConfig(),
      cache,
      logger,
      ...extra,
    });
    closers.push(async () => {
      await exchanger.close();
      await cache.close();
    });
    return exchanger;
  };
  const exchange = (exchanger: ExchangeClient, subjectToken: string): Promise<unknown> =>
    exchanger.exchange({ subjectToken, subjectTokenType: TokenType.accessToken, audience: 'orders' });
  try {
    const subjects = await Promise.all(Array.from({ length: n }, (_, i) => sts.userToken(`user-${i}`)));
    const rows: Row[] = [];
    const add = (path: string, t: Timings, stsCalls: number | string): void => {
      rows.push({
        path,
        calls: t.count,
        'ops/s': Math.round(t.opsPerSecond),
        'p50 ms': round(t.p50Ms),
        'p99 ms': round(t.p99Ms),
        'STS calls': stsCalls,
      });
    };

    // Miss path: a subject never seen, one STS round trip each; then the same subjects again, all hits.
    const counted = countingDispatcher();
    closers.push(counted.close);
    const local = exchangerWith(createTokenCache({ logger }), { dispatcher: counted.dispatcher });
    await exchange(local, await sts.userToken('warm-up'));
    let before = counted.calls();
    const miss = await timeSequential(n, (i) => exchange(local, subjects[i] as string));
    add('miss: new subject token, STS round trip', miss, counted.calls() - before);
    before = counted.calls();
    add(
      'hit: in-process cache',
      await timeSequential(hits, (i) => exchange(local, subjects[i % n] as string)),
      counted.calls() - before,
    );

    // Redis: one replica fills it; a second replica with a one-entry local cache reads through to Redis.
    const gateway = redisSecrets.sidecar('gateway');
    const redisOptions = {
      Redis: await loadRedis(),
      url: redis.url,
      service: 'gateway',
      credentials: gateway,
      sealKeys: loadSealKeys(gateway.sealKeyFile),
      commandTimeoutMs: 50,
    };
    const filler = exchangerWith(createTokenCache({ logger, redis: redisOptions }));
    const replicaCounted = countingDispatcher();
    closers.push(replicaCounted.close);
    const replica = exchangerWith(createTokenCache({ logger, maxEntries: 1, redis: redisOptions }), {
      dispatcher: replicaCounted.dispatcher,
    });
    await new Promise((resolve) => setTimeout(resolve, 300)); // both Redis clients connect
    for (const subject of subjects) await exchange(filler, subject);
    add(
      'hit: Redis (another replica filled it, local cache cold)',
      await timeSequential(n, (i) => exchange(replica, subjects[i] as string)),
      replicaCounted.calls(),
    );

    // Single flight: 100 concurrent misses on one key.
    const flightCounted = countingDispatcher();
    closers.push(flightCounted.close);
    const flight = exchangerWith(createTokenCache({ logger }), { dispatcher: flightCounted.dispatcher });
    const fresh = await sts.userToken('single-flight');
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 100 }, () => exchange(flight, fresh)));
    const flightMs = performance.now() - t0;
    rows.push({
      path: '100 concurrent misses on one key',
      calls: 100,
      'ops/s': Math.round(100 / (flightMs / 1000)),
      'p50 ms': '',
      'p99 ms': round(flightMs),
      'STS calls': flightCounted.calls(),
    });

    // Steady state: one hot subject for 20 simulated minutes; tokens live 300 s, refresh-ahead starts 90 s before exp.
    const steadyCounted = countingDispatcher();
    closers.push(steadyCounted.close);
    let offsetMs = 0;
    const clock = (): number => Date.now() + offsetMs;
    const steady = exchangerWith(createTokenCache({ logger, now: clock }), {
      dispatcher: steadyCounted.dispatcher,
      now: clock,
    });
    const hot = await sts.userToken('steady');
    await exchange(steady, hot);
    const steps = 20_000;
    const outcomes = { hit: 0, 'stale-refresh': 0, miss: 0 };
    const steadyLatencies: number[] = [];
    const steadyStarted = performance.now();
    for (let i = 0; i < steps; i++) {
      offsetMs += (20 * 60 * 1000) / steps;
      const t = performance.now();
      const issued = (
        await steady.exchange({ subjectToken: hot, subjectTokenType: TokenType.accessToken, audience: 'orders' })
      ).cached;
      steadyLatencies.push(performance.now() - t);
      outcomes[issued]++;
      // Between requests a real event loop runs I/O, the background refresh's included.
      await yieldToIo();
    }
    const steadyTimings = summarise(steadyLatencies, performance.now() - steadyStarted);
    add(
      `steady state, refresh-ahead (${outcomes.hit} hit, ${outcomes['stale-refresh']} served while refreshing, ${outcomes.miss} waited for the STS)`,
      steadyTimings,
      steadyCounted.calls() - 1,
    );

    const checks: Check[] = [
      {
        target: '100 concurrent misses on one key → exactly 1 STS call',
        measured: `${flightCounted.calls()} call(s)`,
        met: flightCounted.calls() === 1,
      },
      {
        target: 'steady state with refresh-ahead → no STS round trip in the p99',
        measured: `${outcomes.miss} callers waited for the STS; p99 ${steadyTimings.p99Ms.toFixed(3)} ms vs miss p50 ${miss.p50Ms.toFixed(3)} ms`,
        met: steadyTimings.p99Ms < miss.p50Ms,
      },
    ];
    const title = 'Scenario 3 — exchange: miss vs hit (in process, Redis), single flight, refresh-ahead';
    const markdown = writeResults('exchange', title, rows, { checks });
    return { name: 'exchange', title, rows, checks, markdown };
  } finally {
    for (const close of closers) await close().catch(() => {});
    await redis.stop();
    redisSecrets.remove();
    await sts.stop();
  }
}

if (import.meta.main) console.log((await run({ quick: process.env.BENCH_QUICK === '1' })).markdown);
