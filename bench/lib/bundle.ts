/**
 * The benchmark measures what ships: every baton process it starts runs the
 * esbuild bundle the image runs (scripts/build.ts), and the bare Node.js
 * proxy is bundled the same way, so neither pays for type stripping. Built
 * once per benchmark process into its own directory under bench/.build/
 * (inside the project, so the external packages resolve from node_modules;
 * its own, so two runs never rebuild under each other), removed on exit.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildBundle, PROJECT_ROOT } from '../../scripts/build.ts';
import type { Mesh } from '../../src/demo/mesh.ts';

/** The V8 flags the image sets (Dockerfile `NODE_OPTIONS`): sidecars and bare proxies run with them too. */
export const IMAGE_NODE_OPTIONS = '--max-semi-space-size=16';
/** The runtime environment the image sets (Dockerfile ENV): the V8 flags, and glibc held to two malloc arenas. */
export const IMAGE_ENV: Readonly<Record<string, string>> = { NODE_OPTIONS: IMAGE_NODE_OPTIONS, MALLOC_ARENA_MAX: '2' };

/**
 * BENCH_PROFILE=<dir>: every mesh process a scenario starts through
 * `imageEnv` also writes a V8 CPU profile there when it exits
 * (`--cpu-prof`, beside the image's flags). Read one with
 * bench/lib/cpuprofile-summary.ts; `announceProfiled` prints which pid is
 * which sidecar. The profile covers the process's whole life, start-up
 * included, so compare per-request figures from long runs only.
 */
export const PROFILE_DIR = process.env.BENCH_PROFILE;

/** The image's environment plus `extra` (log level, OTEL_* settings), and the profiling flag under BENCH_PROFILE. */
export function imageEnv(extra: Readonly<Record<string, string>> = {}): Readonly<Record<string, string>> {
  return {
    ...IMAGE_ENV,
    ...extra,
    ...(PROFILE_DIR === undefined
      ? {}
      : { NODE_OPTIONS: `${IMAGE_ENV.NODE_OPTIONS ?? ''} --cpu-prof --cpu-prof-dir=${PROFILE_DIR}`.trim() }),
  };
}

/** Under BENCH_PROFILE, which profile is which: the pair's sidecars' pids, on stderr. */
export function announceProfiled(label: string, mesh: Mesh): void {
  if (PROFILE_DIR === undefined) return;
  const pid = (name: string): number | undefined => mesh.process(name).child.pid;
  console.error(
    `bench: ${label}: CPU profiles in ${PROFILE_DIR}; orders-sidecar (outbound) pid ${pid('orders-sidecar')}, payments-sidecar (inbound) pid ${pid('payments-sidecar')}`,
  );
}

export interface BenchBundle {
  /** The CLI: `entry` for startMesh, or the script of a `baton` process. */
  readonly baton: string;
  /** bench/lib/bare-proxy.ts as plain JavaScript. */
  readonly bareProxy: string;
  /** bench/lib/net-proxy.ts as plain JavaScript. */
  readonly netProxy: string;
  /** bench/lib/bare-h2-proxy.ts as plain JavaScript. */
  readonly bareH2Proxy: string;
}

let building: Promise<BenchBundle> | undefined;

export function benchBundle(): Promise<BenchBundle> {
  building ??= build();
  return building;
}

async function build(): Promise<BenchBundle> {
  const parent = join(PROJECT_ROOT, 'bench/.build');
  mkdirSync(parent, { recursive: true });
  const outdir = mkdtempSync(join(parent, 'run-'));
  process.once('exit', () => rmSync(outdir, { recursive: true, force: true }));
  await buildBundle(outdir, {
    baton: join(PROJECT_ROOT, 'bin/baton.js'),
    'bare-proxy': fileURLToPath(new URL('./bare-proxy.ts', import.meta.url)),
    'net-proxy': fileURLToPath(new URL('./net-proxy.ts', import.meta.url)),
    'bare-h2-proxy': fileURLToPath(new URL('./bare-h2-proxy.ts', import.meta.url)),
  });
  return {
    baton: join(outdir, 'baton.mjs'),
    bareProxy: join(outdir, 'bare-proxy.mjs'),
    netProxy: join(outdir, 'net-proxy.mjs'),
    bareH2Proxy: join(outdir, 'bare-h2-proxy.mjs'),
  };
}
