/**
 * Debian's nginx and haproxy as real HTTP/1.1 intermediaries for tests:
 * one single-worker process each, in the foreground, on a free loopback
 * port, with a config the test writes (and can print). A missing program
 * fails the test loudly, naming the package: these tests are the oracle
 * for request smuggling through baton, and a skipped oracle proves nothing.
 * bench/lib/nginx.ts and bench/lib/haproxy.ts start the same programs as
 * benchmark baselines (daemonised, installed on demand).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from './net.ts';
import { type RunningProcess, startProcess } from './process.ts';

export interface NativeProxy {
  readonly port: number;
  /** The configuration file it runs with, as written. */
  readonly config: string;
  /** What the process wrote to stderr and its error log. */
  output(): string;
  stop(): Promise<void>;
}

/** The program's path; throws, naming the Debian package and the prerequisites script, when it is missing. */
export function requireProgram(name: 'nginx' | 'haproxy'): string {
  const found = spawnSync('sh', ['-c', `command -v ${name} || ls /usr/sbin/${name}`], { encoding: 'utf8' });
  const path = found.status === 0 ? found.stdout.trim().split('\n')[0] : undefined;
  if (path === undefined || path === '') {
    throw new Error(
      `${name} is missing: this test runs a real ${name} as an origin-side proxy and cannot run without it. Install the Debian package (apt-get install -y ${name}; then service ${name} stop) or run scripts/test-prerequisites.ts as root.`,
    );
  }
  return path;
}

async function listening(port: number, running: RunningProcess, what: string): Promise<void> {
  await waitFor(
    () =>
      new Promise<boolean>((resolve, reject) => {
        if (running.child.exitCode !== null)
          reject(new Error(`${what} exited (${running.child.exitCode}): ${running.stderr().slice(-1500)}`));
        const socket = connect(port, '127.0.0.1');
        socket.once('connect', () => {
          socket.destroy();
          resolve(true);
        });
        socket.once('error', () => resolve(false));
      }),
    { timeoutMs: 10_000, what: `${what} listening on ${port}` },
  );
}

/**
 * nginx as a reverse proxy to `upstreamPort`: one worker, its defaults for
 * parsing and buffering, HTTP/1.1 and keep-alive to the upstream (so the
 * upstream connection is shared between clients, as a sidecar's is).
 */
export async function startNginxProxy(upstreamPort: number): Promise<NativeProxy> {
  const binary = requireProgram('nginx');
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'baton-test-nginx-'));
  // The worker may run as another user (nobody) when the master is root: it must reach its temp paths.
  chmodSync(dir, 0o755);
  const config = `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream origin { server 127.0.0.1:${upstreamPort}; keepalive 16; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), config);
  const running = startProcess(binary, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')]);
  const stop = async (): Promise<void> => {
    await running.stop('SIGTERM', 5_000);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await listening(port, running, 'nginx');
  } catch (error) {
    await stop();
    throw error;
  }
  const log = join(dir, 'error.log');
  return { port, config, output: () => running.stderr() + (existsSync(log) ? readFileSync(log, 'utf8') : ''), stop };
}

/**
 * haproxy in HTTP mode in front of `upstreamPort`: one thread, keep-alive
 * on both sides and server connections shared between clients
 * (`http-reuse always`), everything else at its defaults.
 */
export async function startHaproxyProxy(upstreamPort: number): Promise<NativeProxy> {
  const binary = requireProgram('haproxy');
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'baton-test-haproxy-'));
  const config = `global
  nbthread 1
  maxconn 256
defaults
  mode http
  timeout connect 2s
  timeout client 10s
  timeout server 10s
  timeout http-keep-alive 10s
  option http-keep-alive
  http-reuse always
frontend hop
  bind 127.0.0.1:${port}
  default_backend origin
backend origin
  server origin 127.0.0.1:${upstreamPort}
`;
  writeFileSync(join(dir, 'haproxy.cfg'), config);
  // -db: in the foreground, so this process is the one to stop.
  const running = startProcess(binary, ['-db', '-f', join(dir, 'haproxy.cfg')]);
  const stop = async (): Promise<void> => {
    await running.stop('SIGTERM', 5_000);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await listening(port, running, 'haproxy');
  } catch (error) {
    await stop();
    throw error;
  }
  return { port, config, output: () => running.stderr(), stop };
}
