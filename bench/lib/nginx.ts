/**
 * Debian's nginx as the baseline reverse proxy: what a hop costs when it
 * does no token work at all. Installed by the suite when missing.
 *
 * Every hop runs at nginx's defaults (#28): one worker process (nginx's
 * default, and one sidecar is one event loop), response buffering on, the
 * default access log in the default `combined` format (written to the hop's
 * temporary prefix, as nginx does unless told otherwise), default
 * worker_connections and keepalive_requests. Paths (pid, error log, temp
 * folders, access log) point into a temporary prefix so nginx runs without
 * touching /var; they change where, not what.
 *
 * The one deliberate deviation is upstream keep-alive (`keepalive 256`,
 * `proxy_http_version 1.1`, an empty Connection header): nginx's default
 * opens a new connection to the upstream for every request, while baton's
 * sidecars and the bare Node.js proxies keep a pool of connections to the
 * next hop. Without it the baseline would measure TCP set-up per request,
 * not proxying. The mTLS pair extends it to the TLS connection between its
 * hops (`keepalive_requests` raised on both sides of that connection, as
 * the sidecars' pooled connections have no request limit). Each baseline's
 * whole config is printed at the start of a scenario and kept in its
 * results (JSON and markdown).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { childPids } from './proc-stats.ts';

export interface NginxProxy {
  readonly port: number;
  /** The nginx.conf it runs, for the results: a baseline says how it was configured. */
  readonly config: string;
  pids(): number[];
  stop(): void;
}

export function ensureNginx(): string {
  const found = spawnSync('sh', ['-c', 'command -v nginx || ls /usr/sbin/nginx']);
  if (found.status === 0) return found.stdout.toString().trim().split('\n')[0] as string;
  console.error('bench: nginx is missing; installing Debian nginx-light');
  const install = spawnSync(
    'sh',
    ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light'],
    { stdio: 'inherit' },
  );
  if (install.status !== 0)
    throw new Error('bench: could not install nginx (apt-get failed); the nginx baselines cannot run');
  return '/usr/sbin/nginx';
}

/** Proxying with upstream keep-alive (HTTP/1.1, no Connection header), the one deviation from nginx's defaults; buffering stays on. */
const KEEPALIVE_PROXY = `      # The one deliberate deviation from nginx's defaults: upstream keep-alive (with the upstream's keepalive), as the sidecars pool theirs.
      proxy_http_version 1.1;
      proxy_set_header Connection "";`;
const PROXY_TO_APP = `    location / {
      proxy_pass http://app;
${KEEPALIVE_PROXY}
    }`;

/** One nginx reverse proxy hop at nginx's defaults but for upstream keep-alive, one worker (like one sidecar process). */
export function startNginxProxy(binary: string, listenPort: number, upstreamPort: number): NginxProxy {
  return startNginx(
    binary,
    listenPort,
    `
  upstream app { server 127.0.0.1:${upstreamPort}; keepalive 256; }
  server {
    listen 127.0.0.1:${listenPort};
${PROXY_TO_APP}
  }`,
  );
}

/**
 * One gRPC hop (ngx_http_grpc_module): h2c in (`listen … http2`, the
 * nginx 1.22 syntax Debian 12 ships; `http2 on` from 1.25.1), h2c out to the
 * upstream with `grpc_pass` and upstream keep-alive, on the base every
 * hop here shares (nginx's defaults: one worker, the default access log);
 * nginx's defaults otherwise, but for `keepalive_requests` (below)
 * (scenario 8, bench/grpc.bench.ts).
 */
export function startNginxGrpcProxy(binary: string, listenPort: number, upstreamPort: number): NginxProxy {
  return startNginx(
    binary,
    listenPort,
    `
  upstream app { server 127.0.0.1:${upstreamPort}; keepalive 256; }
  server {
    listen 127.0.0.1:${listenPort} http2;
    # Off nginx's defaults for the load generator's sake: h2load does not reconnect when nginx ends a
    # connection (GOAWAY) after its default 1,000 requests, so its clients would stop (a grpc-js client reconnects).
    # It spares nginx one reconnect per 1,000 calls; baton's sidecars set no such limit.
    keepalive_requests 1000000000;
    location / {
      grpc_pass grpc://app;
    }
  }`,
  );
}

/** PEM files of one workload identity (src/identity/dev-ca.ts, csi-driver-spiffe layout). */
export interface NginxIdentity {
  readonly certFile: string;
  readonly keyFile: string;
  readonly bundleFile: string;
}

/**
 * The inner hop of an mTLS pair: TLS 1.3 only (as baton's inbound), a client
 * certificate required and checked against the bundle (`ssl_verify_client
 * on`). nginx checks the chain only; it has no SPIFFE ID authorization.
 * Session tickets stay on (nginx's default) so the outer hop can resume.
 */
export function startNginxTlsInner(
  binary: string,
  listenPort: number,
  upstreamPort: number,
  identity: NginxIdentity,
): NginxProxy {
  return startNginx(
    binary,
    listenPort,
    `
  upstream app { server 127.0.0.1:${upstreamPort}; keepalive 256; }
  server {
    listen 127.0.0.1:${listenPort} ssl;
    ssl_protocols TLSv1.3;
    ssl_certificate ${identity.certFile};
    ssl_certificate_key ${identity.keyFile};
    ssl_client_certificate ${identity.bundleFile};
    ssl_verify_client on;
    ssl_verify_depth 2;
    ssl_session_cache shared:inner:10m;
    # Part of the one deviation: the outer hop's kept-alive TLS connection is not closed after nginx's default 1,000 requests.
    keepalive_requests 100000;
${PROXY_TO_APP}
  }`,
  );
}

/**
 * The outer hop of an mTLS pair: plain HTTP from the client (like an app
 * calling its sidecar's outbound port), then TLS 1.3 to the inner hop with a
 * client certificate, the server's chain and name (`serverName`, a DNS SAN of
 * its certificate) verified, upstream keep-alive and TLS session reuse.
 */
export function startNginxTlsOuter(
  binary: string,
  listenPort: number,
  upstreamPort: number,
  identity: NginxIdentity,
  serverName: string,
): NginxProxy {
  return startNginx(
    binary,
    listenPort,
    `
  # Upstream keep-alive, the one deviation from nginx's defaults, here over TLS: kept for as many requests as the inner hop allows.
  upstream inner { server 127.0.0.1:${upstreamPort}; keepalive 256; keepalive_requests 100000; }
  server {
    listen 127.0.0.1:${listenPort};
    location / {
      proxy_pass https://inner;
${KEEPALIVE_PROXY}
      proxy_ssl_protocols TLSv1.3;
      proxy_ssl_certificate ${identity.certFile};
      proxy_ssl_certificate_key ${identity.keyFile};
      proxy_ssl_trusted_certificate ${identity.bundleFile};
      proxy_ssl_verify on;
      proxy_ssl_verify_depth 2;
      proxy_ssl_name ${serverName};
      proxy_ssl_server_name on;
      proxy_ssl_session_reuse on;
    }
  }`,
  );
}

function startNginx(binary: string, listenPort: number, http: string): NginxProxy {
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-nginx-'));
  const conf = `
# nginx's defaults (#28, bench/lib/nginx.ts): paths point into a temporary prefix; the deviations are commented where they are.
worker_processes 1;
daemon on;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { }
http {
  access_log ${dir}/access.log combined;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;${http}
}`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const started = spawnSync(binary, ['-c', join(dir, 'nginx.conf'), '-p', dir]);
  if (started.status !== 0) throw new Error(`nginx failed to start: ${started.stderr.toString()}`);
  const masterPid = Number(readFileSync(join(dir, 'nginx.pid'), 'utf8').trim());
  return {
    port: listenPort,
    config: conf,
    pids: () => [masterPid, ...childPids(masterPid)],
    stop() {
      spawnSync(binary, ['-c', join(dir, 'nginx.conf'), '-p', dir, '-s', 'stop']);
      // `-s stop` only signals: removed before nginx has exited, the prefix came back with a temp folder in it.
      waitForExit(masterPid, 5_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Blocks until `pid` has exited or `timeoutMs` has passed (stop() is synchronous; it runs once, at the end).
 * A daemon's parent is init, which may take a second or two to reap it: a zombie has exited.
 */
export function waitForExit(pid: number, timeoutMs: number): void {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; Atomics.wait(pause, 0, 0, 10)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return;
    } catch {
      return;
    }
  }
}
