/**
 * h2load (nghttp2's HTTP/2 load generator, Debian package nghttp2-client) as
 * the gRPC load generator of scenario 8: autocannon speaks only HTTP/1.1,
 * and a C client leaves the two cores to what it measures. Each run sends
 * one gRPC-framed request body as POST with `content-type: application/grpc`
 * and `te: trailers`, over h2c with prior knowledge, `clients` connections of
 * up to `streams` calls in flight each, either as fast as it can or at a
 * fixed rate (`--rps`, per connection).
 *
 * h2load cannot read trailers, so it never sees `grpc-status`: a call that a
 * proxy refuses (HTTP 200, grpc-status 7) looks like a success to it. So
 * only HTTP 200s are counted here, and the scenario checks each path
 * separately: one @grpc/grpc-js call before the load, and the app's own
 * count of the calls it served during each run.
 *
 * Latencies come from h2load's per-request log (`--log-file`: microseconds
 * from a request's start to the end of its response). At a fixed rate a
 * request starts when h2load submits it, not when its slot came: a stall
 * that holds back submissions is not charged to them (unlike
 * ./constant-rate.ts), so these percentiles are a floor.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface H2loadOptions {
  /** `http://127.0.0.1:<port><path>`: where h2load connects, and the `:path` it sends. */
  readonly url: string;
  /** The `:authority` to send instead of the URL's host (a sidecar's outbound port reads the target service from it). */
  readonly authority?: string;
  /** The request body: one gRPC message, framed (./grpc-echo.ts `grpcFrame`). */
  readonly body: Buffer;
  readonly durationSec: number;
  /** Connections. */
  readonly clients: number;
  /** Most calls in flight on one connection. */
  readonly streams: number;
  /** Calls per second across all connections; absent: as fast as it can. */
  readonly rate?: number;
}

export interface H2loadResult {
  /** Requests h2load finished (any outcome). */
  readonly done: number;
  /** Of those, answered HTTP 200. */
  readonly ok: number;
  /** HTTP 200s per second of the run. */
  readonly rps: number;
  /** Latency of the HTTP 200s, from h2load's per-request log. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Requests not answered 200: refused streams, resets, timeouts, other statuses. */
  readonly errors: number;
  /** The command line, for the results: a baseline says how it was driven. */
  readonly command: string;
}

export function ensureH2load(): string {
  const found = spawnSync('sh', ['-c', 'command -v h2load']);
  if (found.status === 0) return found.stdout.toString().trim();
  console.error(
    'bench: ***** h2load is missing: the gRPC rows of scenario 8 need it. Installing Debian nghttp2-client *****',
  );
  const install = spawnSync(
    'sh',
    ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client'],
    { stdio: 'inherit' },
  );
  if (install.status !== 0)
    throw new Error(
      'bench: h2load is missing and could not be installed (apt-get install nghttp2-client failed); the gRPC rows cannot run. Install nghttp2-client and run again.',
    );
  return 'h2load';
}

/** Runs h2load without blocking this process's event loop (the gRPC app of the scenario runs in it). */
export async function runH2load(binary: string, options: H2loadOptions): Promise<H2loadResult> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-h2load-'));
  try {
    const bodyFile = join(dir, 'body');
    const logFile = join(dir, 'requests.log');
    writeFileSync(bodyFile, options.body);
    const args = [
      ...[
        '--clients',
        String(options.clients),
        '--max-concurrent-streams',
        String(options.streams),
        '--duration',
        String(options.durationSec),
      ],
      ...(options.rate === undefined ? [] : ['--rps', String(options.rate / options.clients)]),
      ...['--data', bodyFile, '--header', 'content-type: application/grpc', '--header', 'te: trailers'],
      ...(options.authority === undefined ? [] : ['--header', `:authority: ${options.authority}`]),
      ...['--log-file', logFile, options.url],
    ];
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', resolve);
    });
    const command = [
      binary,
      ...args.map((a) =>
        a === bodyFile ? '<one framed message>' : a === logFile ? '<per-request log>' : a.includes(' ') ? `'${a}'` : a,
      ),
    ].join(' ');
    const requests = /^requests: (\d+) total, (\d+) started, (\d+) done/m.exec(output);
    const seconds = /^finished in ([\d.]+)s/m.exec(output);
    if (code !== 0 || requests === null || seconds === null)
      throw new Error(`bench: h2load exited ${code} without its summary (${command}):\n${output.slice(-2000)}`);
    const latenciesUs = readFileSync(logFile, 'utf8')
      .split('\n')
      .map((line) => line.split('\t'))
      .filter((fields) => fields[1] === '200')
      .map((fields) => Number(fields[2]))
      .sort((a, b) => a - b);
    const done = Number(requests[3]);
    const ok = latenciesUs.length;
    const at = (p: number): number =>
      ok === 0 ? 0 : (latenciesUs[Math.min(ok - 1, Math.floor(ok * p))] as number) / 1000;
    return {
      done,
      ok,
      rps: ok / Number(seconds[1]),
      p50Ms: at(0.5),
      p99Ms: at(0.99),
      errors: Math.max(0, done - ok),
      command,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
