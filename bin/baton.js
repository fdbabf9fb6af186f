#!/usr/bin/env node
// The entry point. From a checkout it runs the TypeScript sources directly on
// Node.js 24 (type stripping), so tests never see a stale build; the npm
// package and the image run it bundled by esbuild (scripts/build.ts → dist/baton.mjs).

// Checked before anything is loaded, so an older Node.js gets one plain line
// rather than a loader or syntax error. Keep in step with package.json "engines".
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(
    `baton needs Node.js 22.18 or later (24 recommended); this is Node.js ${process.versions.node}\n`,
  );
  process.exit(1);
}
const { main } = await import('../src/cli/main.ts');

// stdin as a getter: the stream is created only by a command that reads it.
const code = await main(process.argv.slice(2), {
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  get stdin() {
    return process.stdin;
  },
});
process.exitCode = code;
// A part that failed (a port taken, a bad key) must not linger with timers
// or half-open listeners keeping it alive: exit now, once stdio has drained.
if (code !== 0) process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
