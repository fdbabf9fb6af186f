/**
 * `npm run build`: bundles the CLI into dist/ with esbuild, as plain ESM
 * JavaScript: what the container image and the benchmark run. Running the
 * TypeScript sources loads amaro's type-stripping wasm and 650+ module
 * records; the bundle loads neither, which takes about 30 MB off each
 * sidecar's idle RSS. Development and tests keep running the sources, so a
 * stale dist/ is never what a test exercises.
 */
import { copyFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type BuildOptions } from 'esbuild';

export const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Output name (without `.mjs`) → entry point; `baton` is the CLI. */
export type EntryPoints = Readonly<Record<string, string>>;

export const BATON_ENTRY: EntryPoints = { baton: join(PROJECT_ROOT, 'bin/baton.js') };

export function bundleOptions(outdir: string, entryPoints: EntryPoints = BATON_ENTRY): BuildOptions {
  return {
    absWorkingDir: PROJECT_ROOT,
    entryPoints: { ...entryPoints },
    outdir,
    bundle: true,
    // Each subcommand is a dynamic import() in src/cli/main.ts: as its own chunk, `baton sidecar` never loads the STS, policy server or injector.
    splitting: true,
    platform: 'node',
    format: 'esm',
    // The npm package supports Node.js 22.18 and later (package.json engines; test/package/pack.test.ts runs it on 22.18).
    target: 'node22.18',
    outExtension: { '.js': '.mjs' },
    // Bundling @opentelemetry/api while the SDK stays external loads two API copies (and two propagator registries); the graphviz wasm is loaded from its package.
    // gRPC (baton authz; also the OTLP gRPC exporter's) stays one copy in node_modules beside the SDK that loads it too. The Envoy
    // protos it serves are bundled as a compiled descriptor (src/authz/ext-authz.descriptor.json), so no .proto file is read at run time.
    external: ['@opentelemetry/*', '@hpcc-js/wasm-graphviz', '@grpc/*'],
    // Bundled CommonJS dependencies call require('node:…'), which ESM output has no binding for.
    banner: {
      js: "import { createRequire as __batonCreateRequire } from 'node:module'; const require = __batonCreateRequire(import.meta.url);",
    },
    // esbuild renames identifiers that collide across modules; keeping each function's and class's `.name` keeps stack traces and CPU profiles readable.
    keepNames: true,
    sourcemap: 'linked',
    logLevel: 'warning',
  };
}

/** Bundles into `outdir` (emptied first), which must be inside the project so the external packages resolve from its node_modules. */
export async function buildBundle(outdir: string, entryPoints: EntryPoints = BATON_ENTRY): Promise<void> {
  const target = resolve(outdir);
  const inProject = relative(PROJECT_ROOT, target);
  // It is emptied first: never the project itself.
  if (inProject === '' || inProject.startsWith('..') || isAbsolute(inProject))
    throw new Error(
      `bundle directory ${target} must be a directory inside the project ${PROJECT_ROOT}, where the external packages resolve`,
    );
  rmSync(target, { recursive: true, force: true });
  await build(bundleOptions(target, entryPoints));
  // `baton demo` reads the example call graph; the bundle carries it so dist/ runs on its own (src/demo/mesh.ts looks beside itself).
  copyFileSync(join(PROJECT_ROOT, 'examples/shop.callgraph.yaml'), join(target, 'shop.callgraph.yaml'));
}

function sizeOf(dir: string, suffix: string): { files: number; bytes: number } {
  const files = readdirSync(dir).filter((name) => name.endsWith(suffix));
  return { files: files.length, bytes: files.reduce((sum, name) => sum + statSync(join(dir, name)).size, 0) };
}

if (import.meta.main) {
  const outdir = join(PROJECT_ROOT, 'dist');
  const started = performance.now();
  await buildBundle(outdir);
  const { files, bytes } = sizeOf(outdir, '.mjs');
  console.log(
    `baton: built ${relative(process.cwd(), outdir) || '.'}/baton.mjs: ${files} chunks, ${(bytes / 2 ** 20).toFixed(1)} MiB in ${Math.round(performance.now() - started)} ms`,
  );
}
