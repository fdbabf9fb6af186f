/**
 * wrk (Debian package `wrk`) as the second load generator of scenario 1
 * (#28): a held-out check on autocannon. autocannon runs in the bench's own
 * Node.js process on the same two cores as what it measures, so a client
 * that saturates before the proxies would compress every ratio towards 1.
 * wrk is a C client with one thread; if the ratio it measures between two
 * paths agrees with autocannon's, the ratio is the proxies', not the
 * client's.
 *
 * This module never throws for a missing or failing wrk: `runWrk` answers
 * `undefined` with the reason, and the scenario turns that into a failed
 * check, so a run without wrk says so instead of passing quietly.
 */
import { spawn, spawnSync } from 'node:child_process';
import { median } from './report.ts';
import type { Check } from './scenario.ts';

export const WRK_DEBIAN_PACKAGE = 'wrk';

export interface WrkOptions {
  readonly url: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly durationSec: number;
  readonly connections: number;
}

export interface WrkResult {
  readonly requests: number;
  readonly rps: number;
  /** Socket errors (connect, read, write, timeout) and non-2xx/3xx answers. */
  readonly errors: number;
  /** The command line, for the results: a check says how it was driven. */
  readonly command: string;
}

/** The path of wrk, or undefined when it is not installed. */
export function findWrk(): string | undefined {
  const found = spawnSync('sh', ['-c', 'command -v wrk || ls /usr/bin/wrk'], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim().split('\n')[0] : undefined;
}

/** What a run without wrk says, loudly, in its failed check. */
export function wrkMissing(): string {
  return `wrk is not installed: the cross-check did not run (sudo apt-get install -y ${WRK_DEBIAN_PACKAGE})`;
}

/** One saturated run, one thread, `connections` kept-alive connections; `{ error }` when wrk failed or printed no rate. */
export async function runWrk(binary: string, options: WrkOptions): Promise<WrkResult | { readonly error: string }> {
  const args = ['-t1', `-c${options.connections}`, `-d${options.durationSec}s`];
  // wrk adds its own Host unless it is given one spelled `Host` exactly (its wrk.lua looks the name up case-sensitively):
  // a lowercase `host` would go out as a second Host field, which a strict proxy rightly refuses.
  for (const [name, value] of Object.entries(options.headers ?? {}))
    args.push('-H', `${name.toLowerCase() === 'host' ? 'Host' : name}: ${value}`);
  args.push(options.url);
  const command = `wrk ${args.map((a) => (/\s/.test(a) ? `'${a}'` : a)).join(' ')}`;
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const code = await new Promise<number | null>((resolve) => {
    child.on('error', () => resolve(-1));
    child.on('close', resolve);
  });
  return parseWrk(output, code, command);
}

/** Reads wrk's summary: "N requests in …", "Requests/sec: R", and its error lines. */
export function parseWrk(output: string, code: number | null, command: string): WrkResult | { readonly error: string } {
  const rate = /^Requests\/sec:\s+([\d.]+)/m.exec(output);
  const total = /^\s*(\d+) requests in /m.exec(output);
  if (code !== 0 || rate === null || total === null)
    return { error: `wrk exited ${String(code)} without a rate: ${output.trim().slice(0, 300)}` };
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const socketErrors = socket === null ? 0 : socket.slice(1).reduce((sum, n) => sum + Number(n), 0);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(output)?.[1] ?? 0);
  return { requests: Number(total[1]), rps: Number(rate[1]), errors: socketErrors + non2xx, command };
}

/** wrk's runs of the cross-checked paths (requests/s per round, by path name), what went wrong, and its command line. */
export interface CrossCheck {
  readonly rps: Readonly<Record<string, readonly number[]>>;
  readonly problems: readonly string[];
  readonly command: string;
}

/**
 * The held-out check: wrk's `numerator ÷ denominator` throughput ratio (medians of its runs) within
 * `tolerance` of autocannon's, or a failed check that says why it could not be compared (wrk missing, an
 * error, a path never measured). Never met by default.
 */
export function crossCheckRatio(
  crossCheck: CrossCheck,
  compare: {
    readonly numerator: string;
    readonly denominator: string;
    readonly autocannonRatio: number;
    readonly tolerance: number;
  },
): Check {
  const target = `a second load generator agrees: wrk's ${compare.numerator} ÷ ${compare.denominator} throughput ratio within ${Math.round(compare.tolerance * 100)}% of autocannon's`;
  // median([]) is NaN: a path wrk never measured fails here.
  const [top, bottom] = [compare.numerator, compare.denominator].map((name) => median(crossCheck.rps[name] ?? [])) as [
    number,
    number,
  ];
  if (crossCheck.problems.length > 0 || !(top > 0) || !(bottom > 0) || !(compare.autocannonRatio > 0)) {
    return {
      target,
      measured: `not measured: ${crossCheck.problems.join('; ') || 'wrk made no run of both paths'}`,
      met: false,
    };
  }
  const wrkRatio = top / bottom;
  const off = wrkRatio / compare.autocannonRatio - 1;
  return {
    target,
    measured: `wrk ${wrkRatio.toFixed(2)}× (${Math.round(top)} / ${Math.round(bottom)} req/s), autocannon ${compare.autocannonRatio.toFixed(2)}×: ${off >= 0 ? '+' : ''}${(off * 100).toFixed(0)}%`,
    met: Math.abs(off) <= compare.tolerance,
  };
}
