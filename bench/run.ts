/**
 * `npm run bench`: every scenario of the performance suite, one after the
 * other, each writing bench/results/<name>.json and .md; then
 * bench/results/SUMMARY.md with every target, met or not, and every table.
 * BENCH_QUICK=1 makes a smoke run (one short round each; numbers not
 * meaningful), written to bench/results/quick/ instead (lib/report.ts).
 * Not part of `npm test`: it saturates the machine for several minutes.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchBundle } from './lib/bundle.ts';
import { machine, markdownTable, RESULTS_DIR } from './lib/report.ts';
import { benchOptionsFromEnv, type BenchOptions, type ScenarioResult } from './lib/scenario.ts';

type Scenario = (options: BenchOptions) => Promise<ScenarioResult>;

const SCENARIOS: ReadonlyArray<{ readonly file: string; load(): Promise<Scenario> }> = [
  { file: 'hop.bench.ts', load: async () => (await import('./hop.bench.ts')).run },
  { file: 'verify.bench.ts', load: async () => (await import('./verify.bench.ts')).run },
  { file: 'exchange.bench.ts', load: async () => (await import('./exchange.bench.ts')).run },
  { file: 'sts.bench.ts', load: async () => (await import('./sts.bench.ts')).run },
  { file: 'auth-flood.bench.ts', load: async () => (await import('./auth-flood.bench.ts')).run },
  { file: 'policy.bench.ts', load: async () => (await import('./policy.bench.ts')).run },
  { file: 'mtls.bench.ts', load: async () => (await import('./mtls.bench.ts')).run },
  { file: 'authz.bench.ts', load: async () => (await import('./authz.bench.ts')).run },
  // Scenario 5 lives in its own file; run it when it is there.
  {
    file: 'tracing.bench.ts',
    load: async () => ((await import(new URL('./tracing.bench.ts', import.meta.url).href)) as { run: Scenario }).run,
  },
  // Scenario 8: gRPC through the pair against an nginx grpc_pass pair, and fetch against node:http (#27).
  { file: 'grpc.bench.ts', load: async () => (await import('./grpc.bench.ts')).run },
];

const options = benchOptionsFromEnv(process.env);
const started = performance.now();
// Once for every scenario: each baton process runs the bundle the image ships (bench/lib/bundle.ts).
console.error(`bench: bundled baton into ${(await benchBundle()).baton}`);
const results: ScenarioResult[] = [];
for (const scenario of SCENARIOS) {
  if (!existsSync(new URL(`./${scenario.file}`, import.meta.url))) continue;
  const t0 = performance.now();
  console.error(`bench: ${scenario.file}…`);
  const result = await (await scenario.load())(options);
  console.error(`bench: ${scenario.file} done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  results.push(result);
}
const minutes = (performance.now() - started) / 60_000;
const m = machine();
const checks = results.flatMap((r) =>
  r.checks.map((c) => ({
    scenario: r.name,
    target: c.target,
    measured: c.measured,
    met: c.met ? 'yes' : c.notMeasured === true ? '**not measured**' : '**no**',
  })),
);
const summary = [
  '# baton benchmark summary',
  '',
  `${new Date().toISOString()} · ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB · Node.js ${m.node} · ${minutes.toFixed(1)} min${options.quick ? ' · **BENCH_QUICK smoke run: numbers not meaningful**' : ''}`,
  '',
  '## Targets',
  '',
  markdownTable(checks),
  ...results.map((r) => r.markdown.replace(/^## /, '## ')),
].join('\n');
mkdirSync(RESULTS_DIR, { recursive: true });
writeFileSync(join(RESULTS_DIR, 'SUMMARY.md'), summary);
console.log(summary);
console.error(
  `bench: results in ${RESULTS_DIR}${options.quick ? ' (quick run: the committed results in bench/results/ are untouched)' : ''}`,
);
