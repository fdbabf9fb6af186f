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
 * Arrivals are evenly spaced. A 1 ms timer on the main thread wakes late
 * (1.1-1.3 ms) and then releases the requests that fell due together, in
 * small bursts; bursty arrivals let a proxy serve several requests per
 * wake-up and made CPU per 1,000 requests look about 30% lower than evenly
 * spaced ones (#19). So a clock thread sleeps with `Atomics.wait` (sub-
 * millisecond timeouts, no spinning: the generator must not take a core
 * from the proxies it measures) until each slot, and wakes the main thread,
 * which sends what is due. `arrivals: 'timer'` keeps the old pattern for
 * comparison; every result says which pattern it used.
 *
 * Why not autocannon's `overallRate`: autocannon 8 lets each connection send
 * its per-second quota as fast as it can at the start of every second (a
 * burst, then silence) and records latency in whole milliseconds, which is
 * too coarse for a sub-millisecond budget. It is still used for throughput
 * at saturation (./load.ts).
 */
import { Worker } from 'node:worker_threads';
import { Pool } from 'undici';

export type ArrivalPattern = 'even' | 'timer';

export interface ConstantRateOptions {
  readonly url: string;
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly rate: number;
  readonly durationSec: number;
  /** Keep-alive connections; enough that none waits for another's answer at this rate. */
  readonly connections?: number;
  /** Default 'even'. */
  readonly arrivals?: ArrivalPattern;
}

export interface ConstantRateResult {
  readonly sent: number;
  readonly errors: number;
  readonly non2xx: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly arrivals: ArrivalPattern;
  /** Share of consecutive sends whose gap is within ±25% of the nominal 1/rate: how even the arrivals were. */
  readonly evenShare: number;
}

export async function runConstantRate(options: ConstantRateOptions): Promise<ConstantRateResult> {
  const pool = new Pool(options.url, {
    connections: options.connections ?? 64,
    pipelining: 1,
    keepAliveTimeout: 30_000,
  });
  const total = Math.round(options.rate * options.durationSec);
  const intervalNs = 1e9 / options.rate;
  const latenciesNs = new Float64Array(total);
  const sentAtNs = new Float64Array(total);
  const headers = { ...options.headers };
  let sent = 0;
  let done = 0;
  let errors = 0;
  let non2xx = 0;
  const start = process.hrtime.bigint();

  const fire = (index: number): void => {
    const sentNs = process.hrtime.bigint();
    sentAtNs[index] = Number(sentNs - start);
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

  const arrivals = options.arrivals ?? 'even';
  const release = (): boolean => {
    const elapsedNs = Number(process.hrtime.bigint() - start);
    const due = Math.min(total, Math.floor(elapsedNs / intervalNs) + 1);
    for (; sent < due; sent++) fire(sent);
    return sent >= total;
  };
  if (arrivals === 'timer') {
    await new Promise<void>((resolve) => {
      // A 1 ms timer, not a busy loop: the generator must not take a core from the proxies it measures.
      const tick = (): void => (release() ? resolve() : void setTimeout(tick, 1));
      tick();
    });
  } else {
    await evenClock(intervalNs, release);
  }
  while (done < total) await new Promise((resolve) => setTimeout(resolve, 5));
  await pool.close();

  const sorted = latenciesNs.sort();
  const at = (p: number): number => (sorted[Math.min(total - 1, Math.floor(total * p))] as number) / 1e6;
  let even = 0;
  for (let i = 1; i < total; i++)
    if (Math.abs((sentAtNs[i] as number) - (sentAtNs[i - 1] as number) - intervalNs) <= intervalNs / 4) even++;
  const evenShare = Math.round((even / Math.max(1, total - 1)) * 100) / 100;
  return {
    sent: total,
    errors,
    non2xx,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    maxMs: (sorted[total - 1] as number) / 1e6,
    arrivals,
    evenShare,
  };
}

/**
 * The clock thread: it sleeps until each slot with Atomics.wait, which takes
 * fractional milliseconds and blocks without spinning, then posts one tick.
 * `onTick` sends what is due and says when everything has been sent.
 */
async function evenClock(intervalNs: number, onTick: () => boolean): Promise<void> {
  const worker = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     const cell = new Int32Array(new SharedArrayBuffer(4));
     const start = process.hrtime.bigint();
     let stopped = false;
     parentPort.on('message', () => { stopped = true; });
     (function loop(slot) {
       for (let i = 0; i < 64 && !stopped; i++, slot++) {
         const waitMs = (slot * workerData.intervalNs - Number(process.hrtime.bigint() - start)) / 1e6;
         if (waitMs > 0) Atomics.wait(cell, 0, 0, waitMs);
         parentPort.postMessage(0);
       }
       // Every 64 slots, let the worker's own loop run so the stop message is seen.
       if (!stopped) setImmediate(loop, slot);
     })(1);`,
    { eval: true, workerData: { intervalNs } },
  );
  await new Promise<void>((resolve, reject) => {
    worker.on('error', reject);
    if (onTick()) return resolve();
    worker.on('message', () => {
      if (onTick()) resolve();
    });
  });
  worker.postMessage('stop');
  await worker.terminate();
}
