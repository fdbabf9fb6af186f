import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { redisAclCommand } from '../../src/cli/redis-acl.ts';
import { redisSecretsLayout } from '../../src/redis/acl.ts';
import { freePort, waitFor } from './net.ts';
import { type RunningProcess, startProcess } from './process.ts';

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  readonly process: RunningProcess;
  stop(): Promise<void>;
  /** Restarts on the same port and with the same ACL file (for fault tests). */
  restart(): Promise<RedisServer>;
}

export interface RedisOptions {
  readonly port?: number;
  /** An ACL file (`--aclfile`): with one, the unauthenticated default user is whatever the file says. */
  readonly aclFile?: string;
}

/**
 * A real Debian `redis-server` on a free loopback port, no persistence.
 * A machine without it fails the test loudly: `.ci/run` installs it.
 */
export async function startRedis(options: RedisOptions = {}): Promise<RedisServer> {
  const which = spawnSync('sh', ['-c', 'command -v redis-server']);
  if (which.status !== 0) {
    throw new Error(
      'redis-server is not installed on this machine: run `apt-get install -y redis-server` (npm test installs it when run as root: scripts/test-prerequisites.ts)',
    );
  }
  const chosen = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'baton-redis-'));
  const proc = startProcess('redis-server', [
    '--port',
    String(chosen),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
    '--protected-mode',
    'yes',
    ...(options.aclFile === undefined ? [] : ['--aclfile', options.aclFile]),
  ]);
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
      return await startRedis({ ...options, port: chosen });
    },
  };
  return server;
}

export interface MeshRedisSecrets {
  readonly dir: string;
  readonly aclFile: string;
  /** The files `baton redis-acl` wrote for a service's sidecar. */
  sidecar(service: string): { readonly username: string; readonly passwordFile: string; readonly sealKeyFile: string };
  readonly sts: { readonly username: string; readonly passwordFile: string };
  readonly admin: { readonly username: string; readonly password: string };
  remove(): void;
}

/** Runs `baton redis-acl` (in process) into a temporary directory: the ACL file and every secret a mesh needs. */
export async function writeMeshRedisSecrets(services: readonly string[]): Promise<MeshRedisSecrets> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-redis-acl-'));
  const out: string[] = [];
  const sink = (into: string[]) => new Writable({ write: (chunk, _e, done) => (into.push(String(chunk)), done()) });
  const code = await redisAclCommand.run(['--services', services.join(','), '--dir', dir], {
    env: {},
    stdout: sink(out),
    stderr: sink(out),
  });
  if (code !== 0) throw new Error(`baton redis-acl failed: ${out.join('')}`);
  return {
    dir,
    aclFile: redisSecretsLayout.aclFile(dir),
    sidecar: (service) => redisSecretsLayout.sidecar(dir, service),
    sts: redisSecretsLayout.sts(dir),
    admin: {
      username: redisSecretsLayout.admin(dir).username,
      password: readFileSync(redisSecretsLayout.admin(dir).passwordFile, 'utf8').trim(),
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
