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

/** The V8 flags the image sets (Dockerfile `NODE_OPTIONS`): sidecars and bare proxies run with them too. */
export const IMAGE_NODE_OPTIONS = '--max-semi-space-size=16';
/** The runtime environment the image sets (Dockerfile ENV): the V8 flags, and glibc held to two malloc arenas. */
export const IMAGE_ENV: Readonly<Record<string, string>> = { NODE_OPTIONS: IMAGE_NODE_OPTIONS, MALLOC_ARENA_MAX: '2' };

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
