/**
 * Debian's haproxy as a second native baseline beside nginx: one HTTP-mode
 * hop at haproxy's defaults (#28), one thread (like one sidecar process, one
 * event loop). Installed by the suite when missing.
 *
 * haproxy's defaults already keep server-side connections alive
 * (`option http-keep-alive` and `http-reuse safe` are its defaults in HTTP
 * mode), so it needs no deviation for the keep-alive that nginx is given.
 * The three timeouts are set because haproxy warns without them (it would
 * wait forever); they never fire during a run. `nbthread 1` is the one
 * worker per hop that every baseline has. The config is printed at the
 * start of a scenario and kept in its results.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface HaproxyProxy {
  readonly port: number;
  /** The haproxy.cfg it runs, for the results: a baseline says how it was configured. */
  readonly config: string;
  pids(): number[];
  stop(): void;
}

export function ensureHaproxy(): string {
  const found = spawnSync('sh', ['-c', 'command -v haproxy || ls /usr/sbin/haproxy']);
  if (found.status === 0) return found.stdout.toString().trim().split('\n')[0] as string;
  console.error('bench: haproxy is missing; installing Debian haproxy');
  const install = spawnSync(
    'sh',
    [
      '-c',
      'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy && (service haproxy stop || true)',
    ],
    { stdio: 'inherit' },
  );
  if (install.status !== 0)
    throw new Error('bench: could not install haproxy (apt-get failed); the haproxy baseline cannot run');
  return '/usr/sbin/haproxy';
}

export function startHaproxyProxy(binary: string, listenPort: number, upstreamPort: number): HaproxyProxy {
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-haproxy-'));
  const conf = `
# haproxy's defaults (#28, bench/lib/haproxy.ts): one thread per hop; timeouts only because haproxy warns without them.
global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend hop
  bind 127.0.0.1:${listenPort}
  default_backend app
backend app
  server app 127.0.0.1:${upstreamPort}
`;
  writeFileSync(join(dir, 'haproxy.cfg'), conf);
  // -db: stay in the foreground, so the child is the one process to measure and stop.
  const child = spawn(binary, ['-db', '-f', join(dir, 'haproxy.cfg')], { stdio: ['ignore', 'ignore', 'inherit'] });
  return {
    port: listenPort,
    config: conf,
    pids: () => (child.pid === undefined ? [] : [child.pid]),
    stop() {
      child.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
