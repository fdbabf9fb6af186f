/**
 * Honest token exchanges during a failed-login flood (issue #16): a real
 * `baton sts` whose clients hold scrypt-hashed secrets, an honest sidecar's
 * exchange load at a fixed rate, and 64 connections sending wrong secrets
 * as fast as they can. The row that matters is the same-run ratio of the
 * honest p99 with the flood to the honest p99 without it: src/sts/
 * auth-throttle.ts bounds the scrypt checks and answers the flood 429.
 * Run alone with node_modules/.bin/node bench/auth-flood.bench.ts (BENCH_QUICK=1
 * for a smoke run), or by bench/run.ts. Writes bench/results/auth-flood.json and .md.
 */
import { hashSecret } from '../src/sts/secret-hash.ts';
import { basic } from '../test/helpers/sts.ts';
import { runLoad } from './lib/load.ts';
import { writeResults } from './lib/report.ts';
import { type BenchOptions, ratio, type ScenarioResult } from './lib/scenario.ts';
import { startBenchSts } from './sts.bench.ts';

const HONEST_RATE = 200;
const HONEST_CONNECTIONS = 8;
const FLOOD_CONNECTIONS = 64;

export async function run(options: BenchOptions): Promise<ScenarioResult> {
  const durationSec = options.quick ? 1 : 5;
  // Every client authenticates by an scrypt hash, as production configs should.
  const sts = await startBenchSts({
    clients: async (clients) =>
      Promise.all(
        clients.map(async ({ secret, ...client }) =>
          typeof secret === 'string' ? { ...client, secretHash: await hashSecret(secret) } : client,
        ),
      ),
  });
  try {
    const honest = await sts.gatewayExchange();
    const flood = {
      url: `${sts.url}/token`,
      method: 'POST' as const,
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: basic('orders', 'a-wrong-secret-0123456789'),
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', audience: 'payments' }).toString(),
    };
    await runLoad({ ...honest, durationSec: 1, connections: HONEST_CONNECTIONS, rate: HONEST_RATE });

    const quiet = await runLoad({ ...honest, durationSec, connections: HONEST_CONNECTIONS, rate: HONEST_RATE });
    const [during, attack] = await Promise.all([
      runLoad({ ...honest, durationSec, connections: HONEST_CONNECTIONS, rate: HONEST_RATE }),
      runLoad({ ...flood, durationSec, connections: FLOOD_CONNECTIONS }),
    ]);
    const slowdown = ratio(during.p99Ms, Math.max(1, quiet.p99Ms));
    const rows = [
      {
        scenario: `honest exchange, ${HONEST_RATE}/s, no flood`,
        opsPerSecond: Math.round(quiet.rps),
        p50Ms: quiet.p50Ms,
        p99Ms: quiet.p99Ms,
        errors: quiet.errors + quiet.non2xx,
      },
      {
        scenario: `honest exchange, ${HONEST_RATE}/s, during the flood`,
        opsPerSecond: Math.round(during.rps),
        p50Ms: during.p50Ms,
        p99Ms: during.p99Ms,
        errors: during.errors + during.non2xx,
      },
      {
        scenario: `failed-login flood, ${FLOOD_CONNECTIONS} connections (401 or 429)`,
        opsPerSecond: Math.round(attack.rps),
        p50Ms: attack.p50Ms,
        p99Ms: attack.p99Ms,
        errors: attack.errors,
      },
    ];
    const title = 'STS — honest exchange p99 during a failed-login flood';
    const checks = [
      {
        target: 'honest exchange p99 during a failed-login flood ≤ 3 × without (same run)',
        measured: `${slowdown}×`,
        met: slowdown <= 3,
      },
      {
        target: "honest exchange p99 during the flood under the sidecars' 2 s STS timeout",
        measured: `${during.p99Ms} ms`,
        met: during.p99Ms < 2_000,
      },
    ];
    const markdown = writeResults('auth-flood', title, rows, {
      durationSec,
      p99Ratio: slowdown,
      checks,
      note: 'one STS process; both load generators (autocannon, whole-millisecond latencies) run in the bench process on the same machine',
    });
    return { name: 'auth-flood', title, rows, checks, markdown };
  } finally {
    await sts.stop();
  }
}

if (import.meta.main) console.log((await run({ quick: process.env.BENCH_QUICK === '1' })).markdown);
