#!/usr/bin/env node
// The entry point. baton runs its TypeScript sources directly on Node.js 24
// (type stripping), so there is no build step to forget.
import { main } from '../src/cli/main.ts';

process.exitCode = await main(process.argv.slice(2), { env: process.env, stdout: process.stdout, stderr: process.stderr });
