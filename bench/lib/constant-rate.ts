/**
 * An open-loop, constant-rate load generator (wrk2's idea) for latency at a
 * fixed request rate. A timer that never waits for answers releases every
 * request whose slot (one per 1/rate seconds) has come, so a slow response
 * never delays the next send: a stall in the system under test is charged
 * to every request that arrives during it, instead of being hidden by a
 * client that politely stops sending (coordinated omission). Latency runs
 * from the moment a request is handed to the client, queueing for a free
 * connection included.
 *
 * Why not autocannon's `overallRate`: autocannon 8 lets each connection send
 * its per-second quota as fast as it can at the start of every second (a
 * burst, then silence) and records latency in whole milliseconds, which is
 * too coarse for a sub-millisecond budget. It is still used for throughput
 * at saturation (./load.ts).
 */
import { Pool } from 'undici';

export interface ConstantRateOptions {
  readonly url: string;
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly rate: number;
  readonly durationSec: number;
  /** Keep-alive connections; enough that none waits for another's answer at this rate. */
  readonly connections?: number;
}

export interface ConstantRateResult {
  readonly sent: number;
  readonly errors: number;
  readonly non2xx: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export async function runConstantRate(options: ConstantRateOptions): Promise<ConstantRateResult> {
  const pool = new Pool(options.url, { connections: options.connections ?? 64, pipelining: 1, keepAliveTimeout: 30_000 });
  const total = Math.round(options.rate * options.durationSec);
  const intervalNs = 1e9 / options.rate;
  const latenciesNs = new Float64Array(total);
  const headers = { ...options.headers };
  let sent = 0;
  let done = 0;
  let errors = 0;
  let non2xx = 0;
  const start = process.hrtime.bigint();

  const fire = (index: number): void => {
    const sentNs = process.hrtime.bigint();
    pool.request({ path: options.path, method: 'GET', headers }).then(
      async (response) => {
        await response.body.dump();
        if (response.statusCode < 200 || response.statusCode > 299) non2xx++;
        latenciesNs[index] = Number(process.hrtime.bigint() - sentNs);
        done++;
      },
      () => {
        errors++;
        latenciesNs[index] = Number(process.hrtime.bigint() - sentNs);
        done++;
      },
    );
  };

  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const elapsedNs = Number(process.hrtime.bigint() - start);
      const due = Math.min(total, Math.floor(elapsedNs / intervalNs) + 1);
      for (; sent < due; sent++) fire(sent);
      // A 1 ms timer, not a busy loop: the generator must not take a core from the proxies it measures.
      if (sent < total) setTimeout(tick, 1);
      else resolve();
    };
    tick();
  });
  while (done < total) await new Promise((resolve) => setTimeout(resolve, 5));
  await pool.close();

  const sorted = latenciesNs.sort();
  const at = (p: number): number => (sorted[Math.min(total - 1, Math.floor(total * p))] as number) / 1e6;
  return { sent: total, errors, non2xx, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: (sorted[total - 1] as number) / 1e6 };
}
