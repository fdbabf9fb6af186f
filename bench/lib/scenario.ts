/** What every benchmark scenario takes and gives back to bench/run.ts. */
import type { Row } from './report.ts';

export interface BenchOptions {
  /** A smoke run: one short round, for tests and quick looks; numbers are not meaningful. */
  readonly quick: boolean;
}

/** One target from the performance issue, as measured in this run. */
export interface Check {
  readonly target: string;
  readonly measured: string;
  readonly met: boolean;
  /** The run could not measure it (e.g. the load generator fell behind): reported as not measured, never met. */
  readonly notMeasured?: boolean;
}

export interface ScenarioResult {
  readonly name: string;
  readonly title: string;
  readonly rows: readonly Row[];
  readonly checks: readonly Check[];
  /** Markdown written to bench/results/<name>.md. */
  readonly markdown: string;
}

export function benchOptionsFromEnv(env: Readonly<Record<string, string | undefined>>): BenchOptions {
  return { quick: env.BENCH_QUICK === '1' };
}

export function ratio(value: number, baseline: number): number {
  return baseline === 0 ? 0 : Math.round((value / baseline) * 100) / 100;
}

export function round(value: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
