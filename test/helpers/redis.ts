import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from './net.ts';
import { type RunningProcess, startProcess } from './process.ts';

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  readonly process: RunningProcess;
  stop(): Promise<void>;
  /** Restarts on the same port (for fault tests). */
  restart(): Promise<RedisServer>;
}

/**
 * A real Debian `redis-server` on a free loopback port, no persistence.
 * A machine without it fails the test loudly: `.ci/run` installs it.
 */
export async function startRedis(port?: number): Promise<RedisServer> {
  const which = spawnSync('sh', ['-c', 'command -v redis-server']);
  if (which.status !== 0) {
    throw new Error('redis-server is not installed on this machine: run `apt-get install -y redis-server` (npm test installs it when run as root: scripts/test-prerequisites.ts)');
  }
  const chosen = port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'baton-redis-'));
  const proc = startProcess('redis-server', ['--port', String(chosen), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'yes']);
  await proc.waitForOutput(/Ready to accept connections/, 10_000);
  await waitFor(async () => true, { what: 'redis' });
  const server: RedisServer = {
    port: chosen,
    url: `redis://127.0.0.1:${chosen}`,
    process: proc,
    async stop() {
      await proc.stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      await server.stop();
      return await startRedis(chosen);
    },
  };
  return server;
}
