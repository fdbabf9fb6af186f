/**
 * Debian's haproxy as a second native baseline beside nginx: one HTTP-mode
 * hop with server-side keep-alive (`http-reuse always`), one thread (like
 * one sidecar process, one event loop). Installed by the suite when missing.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface HaproxyProxy {
  readonly port: number;
  pids(): number[];
  stop(): void;
}

export function ensureHaproxy(): string {
  const found = spawnSync('sh', ['-c', 'command -v haproxy || ls /usr/sbin/haproxy']);
  if (found.status === 0) return found.stdout.toString().trim().split('\n')[0] as string;
  console.error('bench: haproxy is missing; installing Debian haproxy');
  const install = spawnSync('sh', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy && (service haproxy stop || true)'], { stdio: 'inherit' });
  if (install.status !== 0) throw new Error('bench: could not install haproxy (apt-get failed); the haproxy baseline cannot run');
  return '/usr/sbin/haproxy';
}

export function startHaproxyProxy(binary: string, listenPort: number, upstreamPort: number): HaproxyProxy {
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-haproxy-'));
  const conf = `
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  http-reuse always
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
    pids: () => (child.pid === undefined ? [] : [child.pid]),
    stop() {
      child.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
