/**
 * Load generation for the benchmarks: autocannon in this process, either at
 * saturation (throughput) or at a fixed overall rate (latency without
 * coordinated omission: requests are sent on schedule, not when the last
 * one returned).
 */
import autocannon from 'autocannon';

export interface LoadOptions {
  readonly url: string;
  readonly method?: 'GET' | 'POST';
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  readonly durationSec: number;
  readonly connections: number;
  /** Requests per second across all connections; absent: as fast as possible. */
  readonly rate?: number;
}

export interface LoadResult {
  readonly requests: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  readonly non2xx: number;
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const result = await autocannon({
    url: options.url,
    method: options.method ?? 'GET',
    headers: { ...options.headers },
    ...(options.body === undefined ? {} : { body: options.body }),
    duration: options.durationSec,
    connections: options.connections,
    pipelining: 1,
    ...(options.rate === undefined ? {} : { overallRate: options.rate }),
  });
  return {
    requests: result.requests.total,
    rps: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  };
}
