/**
 * The "added p99" check (#19, #28): a proxy pair's p99 at a fixed rate
 * minus the direct path's, against a baseline pair's measured the same way
 * in the same run. It answers met, not met, or not measured, and it never
 * answers met from a measurement that cannot carry the comparison:
 *
 * - the open-loop generator fell behind its schedule (fewer than
 *   MIN_EVEN_SHARE of its sends evenly spaced, ./constant-rate.ts) in any of
 *   the three runs: the machine, not the path, set the tail;
 * - either pair's p99 is at or below the direct path's: a hop cannot take
 *   time away, so the direct run stalled or the noise is larger than the hop
 *   (#28: a direct p99 of 92.5 ms made every "added" figure negative and the
 *   old check report met);
 * - the direct path's own p99 is more than DIRECT_DWARFS times the
 *   baseline's added p99: the tail of the path without any proxy dwarfs the
 *   difference being compared.
 */
import type { Check } from './scenario.ts';

/** Below this share of evenly spaced sends the generator was late (the committed quiet-machine runs keep 0.91–0.98). */
export const MIN_EVEN_SHARE = 0.9;
/** The direct path's p99 may be at most this many times the baseline's added p99. */
export const DIRECT_DWARFS = 5;

export interface LatencyRun {
  readonly p99Ms: number;
  /** Share of evenly spaced sends in this fixed-rate run. */
  readonly evenShare: number;
}

export interface AddedP99Input {
  readonly target: string;
  readonly direct: LatencyRun;
  /** The pair under test, e.g. baton's, and its name in the message. */
  readonly candidate: LatencyRun & { readonly name: string };
  /** The pair it is held against, e.g. nginx's. */
  readonly baseline: LatencyRun & { readonly name: string };
  /** Met when the candidate's added p99 is at most this times the baseline's. */
  readonly factor: number;
}

export type AddedP99Verdict = 'met' | 'not met' | 'not measured';

/** Why the comparison cannot be made, or undefined when it can. */
export function whyNotMeasured(input: AddedP99Input): string | undefined {
  const { direct, candidate, baseline } = input;
  const late = [
    ['direct', direct],
    [candidate.name, candidate],
    [baseline.name, baseline],
  ].filter(([, run]) => (run as LatencyRun).evenShare < MIN_EVEN_SHARE);
  if (late.length > 0) {
    const list = late.map(([name, run]) => `${name as string} ${(run as LatencyRun).evenShare}`).join(', ');
    return `the load generator fell behind its schedule (evenly spaced sends ${list}; at least ${MIN_EVEN_SHARE} needed)`;
  }
  const notSlower = [candidate, baseline].filter((pair) => pair.p99Ms <= direct.p99Ms);
  if (notSlower.length > 0) {
    const list = notSlower.map((pair) => `${pair.name} ${pair.p99Ms.toFixed(3)} ms`).join(', ');
    return `the direct path’s p99 (${direct.p99Ms.toFixed(3)} ms) is not below ${list}: a stall or noise larger than the hop`;
  }
  const baselineAdded = baseline.p99Ms - direct.p99Ms;
  if (direct.p99Ms > DIRECT_DWARFS * baselineAdded) {
    return `the direct path’s p99 (${direct.p99Ms.toFixed(3)} ms) is more than ${DIRECT_DWARFS}× the ${baseline.name}’s added p99 (${baselineAdded.toFixed(3)} ms)`;
  }
  return undefined;
}

export function addedP99Verdict(input: AddedP99Input): AddedP99Verdict {
  if (whyNotMeasured(input) !== undefined) return 'not measured';
  const added = input.candidate.p99Ms - input.direct.p99Ms;
  const baselineAdded = input.baseline.p99Ms - input.direct.p99Ms;
  return added <= input.factor * baselineAdded ? 'met' : 'not met';
}

/** The check as a scenario reports it: met only when measured and within the factor. */
export function addedP99Check(input: AddedP99Input): Check {
  const added = input.candidate.p99Ms - input.direct.p99Ms;
  const baselineAdded = input.baseline.p99Ms - input.direct.p99Ms;
  const figures = `${added.toFixed(3)} ms against ${baselineAdded.toFixed(3)} ms (p99s: direct ${input.direct.p99Ms.toFixed(3)}, ${input.candidate.name} ${input.candidate.p99Ms.toFixed(3)}, ${input.baseline.name} ${input.baseline.p99Ms.toFixed(3)} ms)`;
  const reason = whyNotMeasured(input);
  if (reason !== undefined)
    return { target: input.target, measured: `not measured: ${reason}; ${figures}`, met: false, notMeasured: true };
  return { target: input.target, measured: figures, met: addedP99Verdict(input) === 'met' };
}
