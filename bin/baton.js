#!/usr/bin/env node
// The entry point. From a checkout it runs the TypeScript sources directly on
// Node.js 24 (type stripping), so tests never see a stale build; the image runs
// it bundled by esbuild (scripts/build.ts → dist/baton.mjs).
import { main } from '../src/cli/main.ts';

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
