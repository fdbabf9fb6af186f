/**
 * Debian's nginx as the baseline reverse proxy: what a hop costs when it
 * does no token work at all. Installed by the suite when missing.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { childPids } from './proc-stats.ts';

export interface NginxProxy {
  readonly port: number;
  pids(): number[];
  stop(): void;
}

export function ensureNginx(): string {
  const found = spawnSync('sh', ['-c', 'command -v nginx || ls /usr/sbin/nginx']);
  if (found.status === 0) return found.stdout.toString().trim().split('\n')[0] as string;
  console.error('bench: nginx is missing; installing Debian nginx-light');
  const install = spawnSync('sh', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light'], { stdio: 'inherit' });
  if (install.status !== 0) throw new Error('bench: could not install nginx (apt-get failed); the nginx baselines cannot run');
  return '/usr/sbin/nginx';
}

/** One nginx reverse proxy hop with upstream keep-alive, one worker (like one sidecar process). */
export function startNginxProxy(binary: string, listenPort: number, upstreamPort: number): NginxProxy {
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-nginx-'));
  const conf = `
worker_processes 1;
daemon on;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream app { server 127.0.0.1:${upstreamPort}; keepalive 256; }
  server {
    listen 127.0.0.1:${listenPort};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const started = spawnSync(binary, ['-c', join(dir, 'nginx.conf'), '-p', dir]);
  if (started.status !== 0) throw new Error(`nginx failed to start: ${started.stderr.toString()}`);
  const masterPid = Number(readFileSync(join(dir, 'nginx.pid'), 'utf8').trim());
  return {
    port: listenPort,
    pids: () => [masterPid, ...childPids(masterPid)],
    stop() {
      spawnSync(binary, ['-c', join(dir, 'nginx.conf'), '-p', dir, '-s', 'stop']);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
