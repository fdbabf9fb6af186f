/**
 * The unit suite's guard (`npm run test:unit` loads it into every unit test
 * file's process with --import): a unit test spawns nothing. Every way of
 * starting a process through node:child_process throws, naming the command,
 * so a unit test that starts one fails at that line, whichever helper it
 * went through. A test that needs a real process (the CLI as users run it,
 * redis-server, openssl, a mesh) belongs under test/e2e/, which
 * `npm run test:system` runs.
 *
 * The functions are replaced on the module's exports and the ES module
 * bindings re-synced (syncBuiltinESMExports), so `import { spawn } from
 * 'node:child_process'` in a file loaded later gets the guard too; exec,
 * execFile and fork all go through ChildProcess.prototype.spawn.
 */
import childProcess, { ChildProcess } from 'node:child_process';
import { syncBuiltinESMExports } from 'node:module';
import { relative } from 'node:path';

function refuse(name: string): (...args: unknown[]) => never {
  return (...args: unknown[]) => {
    const file = process.argv[1] === undefined ? 'a unit test' : relative(process.cwd(), process.argv[1]);
    const command =
      args[0] !== null && typeof args[0] === 'object' && 'file' in args[0]
        ? [args[0].file, ...((args[0] as { args?: string[] }).args ?? []).slice(1)]
        : [args[0], ...(Array.isArray(args[1]) ? args[1] : [])];
    throw new Error(
      `expected ${file} to spawn nothing (a unit test), got child_process.${name}: ${command.map(String).join(' ').slice(0, 300)}; a test that starts a process belongs under test/e2e/ (npm run test:system)`,
    );
  };
}

const exported = childProcess as unknown as Record<string, unknown>;
for (const name of ['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync', 'fork'])
  exported[name] = refuse(name);
syncBuiltinESMExports();
(ChildProcess.prototype as unknown as { spawn: unknown }).spawn = refuse('spawn');
