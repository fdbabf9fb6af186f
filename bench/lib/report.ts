/** Benchmark results: JSON for machines, a markdown table for people, dated. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Where results go: BENCH_RESULTS_DIR if set (test/bench's smoke run), else
 * the checked-in bench/results/ for a full run. A BENCH_QUICK=1 run's numbers
 * mean nothing, so they go to bench/results/quick/ (git-ignored) and never
 * replace the committed ones.
 */
export function resultsDir(env: Readonly<Record<string, string | undefined>>): string {
  if (env.BENCH_RESULTS_DIR !== undefined && env.BENCH_RESULTS_DIR !== '') return env.BENCH_RESULTS_DIR;
  return fileURLToPath(new URL(env.BENCH_QUICK === '1' ? '../results/quick/' : '../results/', import.meta.url));
}

export const RESULTS_DIR = resultsDir(process.env);

export interface Row {
  readonly [column: string]: string | number;
}

export function machine(): Record<string, string | number> {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
  };
}

export function markdownTable(rows: readonly Row[]): string {
  const first = rows[0];
  if (first === undefined) return '(no rows)\n';
  const columns = Object.keys(first);
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return (
    [line(columns), line(columns.map(() => '---')), ...rows.map((r) => line(columns.map((c) => format(r[c]))))].join(
      '\n',
    ) + '\n'
  );
}

function format(value: string | number | undefined): string {
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : value.toFixed(value < 10 ? 3 : 1);
  return value ?? '';
}

/** The native baselines of a scenario, by name (e.g. "outer nginx"), each with the whole config it ran (#28). */
export type Baselines = Readonly<Record<string, string>>;

/** Prints every baseline's config at the start of a scenario, so a run's log says what it compared against. */
export function announceBaselines(scenario: string, baselines: Baselines): void {
  for (const [name, config] of Object.entries(baselines))
    console.error(`bench: ${scenario}: ${name} runs with\n${config.trim()}\n`);
}

/** The baselines' configs as markdown, one fenced block each. */
export function baselinesMarkdown(baselines: Baselines): string {
  const blocks = Object.entries(baselines).map(([name, config]) => `${name}:\n\n\`\`\`\n${config.trim()}\n\`\`\`\n`);
  return blocks.length === 0 ? '' : `\n### Baselines, as configured\n\n${blocks.join('\n')}`;
}

/**
 * Writes `bench/results/<name>.json` and `<name>.md`; returns the markdown.
 * `extra.baselines` (the native baselines' configs) goes into both.
 */
export function writeResults(
  name: string,
  title: string,
  rows: readonly Row[],
  extra: Record<string, unknown> & { readonly baselines?: Baselines } = {},
): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const date = new Date().toISOString();
  writeFileSync(
    join(RESULTS_DIR, `${name}.json`),
    JSON.stringify({ name, date, machine: machine(), ...extra, rows }, null, 2) + '\n',
  );
  const md = `## ${title}\n\n${date} on ${machine().cpu} (${machine().cores} cores), Node.js ${process.version}\n\n${markdownTable(rows)}${baselinesMarkdown(extra.baselines ?? {})}`;
  writeFileSync(join(RESULTS_DIR, `${name}.md`), md);
  return md;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/**
 * One measurement from several rounds of it: each number the median of
 * its rounds, each per-proxy list the median element by element, and
 * `errors` the sum (an error in any round counts).
 */
export function medianRounds<M extends { readonly errors: number }>(rounds: readonly M[]): M {
  const first = rounds[0] as M;
  const fields = Object.keys(first).map((key) => {
    const values = rounds.map((m) => (m as Record<string, unknown>)[key]);
    if (key === 'errors') return [key, (values as number[]).reduce((sum, n) => sum + n, 0)];
    if (Array.isArray(values[0]))
      return [
        key,
        (values[0] as number[]).map((_, i) => median(values.map((list) => (list as number[])[i] as number))),
      ];
    return [key, median(values as number[])];
  });
  return Object.fromEntries(fields) as M;
}
