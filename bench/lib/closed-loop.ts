/**
 * A closed-loop load generator for clients that autocannon cannot stand in
 * for (Node's fetch through a CONNECT tunnel, node:http through a proxy):
 * `concurrency` loops, each sending its next request when the last one's
 * answer has been read, for `durationSec`. It measures what one client
 * library gets through a path at saturation, with the library's own costs
 * in the bench process on the same cores. Closed-loop latencies hide stalls
 * (coordinated omission, ./constant-rate.ts), so they are for comparing two
 * clients on one path in one run, not for a latency budget.
 */
import { createHistogram } from 'node:perf_hooks';

export interface ClosedLoopOptions {
  readonly concurrency: number;
  readonly durationSec: number;
  /** One request, its answer read to the end; resolves true when the answer was the expected one. */
  send(): Promise<boolean>;
}

export interface ClosedLoopResult {
  readonly ok: number;
  /** Rejected sends and unexpected answers. */
  readonly errors: number;
  /** Expected answers per second. */
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

export async function runClosedLoop(options: ClosedLoopOptions): Promise<ClosedLoopResult> {
  const histogram = createHistogram();
  let ok = 0;
  let errors = 0;
  const started = process.hrtime.bigint();
  const endsAt = started + BigInt(Math.round(options.durationSec * 1e9));
  const loop = async (): Promise<void> => {
    while (process.hrtime.bigint() < endsAt) {
      const sent = process.hrtime.bigint();
      let good = false;
      try {
        good = await options.send();
      } catch {
        // counted below
      }
      if (good) {
        ok++;
        histogram.record(process.hrtime.bigint() - sent || 1n);
      } else errors++;
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, loop));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return {
    ok,
    errors,
    rps: ok / seconds,
    p50Ms: histogram.percentile(50) / 1e6,
    p99Ms: histogram.percentile(99) / 1e6,
  };
}
