/**
 * Preloaded (`node --import`) into each process test/deploy/compose-health.test.ts
 * starts, so that processes written for docker-compose run together on one
 * machine's loopback as they would on a compose network, unchanged.
 *
 * In compose every service has its own network namespace (the sidecars share
 * their app's: `network_mode: service:<app>`) and reaches the others by
 * service name. Here every process shares 127.0.0.1, so this module keeps one
 * namespace per process, named in COMPOSE_EMULATION:
 *
 * - a listener on port P in namespace N listens on a free loopback port
 *   instead, and writes `<dir>/<N>-<P>` with that port and whether it
 *   listened on every interface (reachable from other namespaces) or on
 *   loopback only (reachable from N alone);
 * - a connection to `<service>:P` goes to that service's namespace, one to
 *   127.0.0.1, ::1 or localhost to the process's own; it is sent to the port
 *   written for that namespace and port, or refused (ECONNREFUSED) when
 *   nothing listens there, or only on the other namespace's loopback.
 *   Any other host name is left alone. TLS server names (SNI, the name the
 *   certificate is checked against) are the original ones.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';

export interface ComposeEmulation {
  /** Where listeners write their port files. */
  readonly dir: string;
  /** This process's network namespace: the service, or the service whose namespace it shares. */
  readonly namespace: string;
  /** Names compose's DNS resolves (services with a namespace of their own), each to its namespace. */
  readonly hosts: Readonly<Record<string, string>>;
}

export interface PortRecord {
  readonly port: number;
  /** Bound on every interface (0.0.0.0, ::): other namespaces reach it too. */
  readonly everyInterface: boolean;
}

export const COMPOSE_EMULATION = 'COMPOSE_EMULATION';

const LOOPBACK: ReadonlySet<string> = new Set(['127.0.0.1', '::1', 'localhost', '::ffff:127.0.0.1']);

export function portFile(dir: string, namespace: string, port: number): string {
  return join(dir, `${namespace}-${port}`);
}

/** Written by a listener (and by the test for a process that is not Node.js, such as redis-server). */
export function recordPort(dir: string, namespace: string, port: number, record: PortRecord): void {
  const file = portFile(dir, namespace, port);
  writeFileSync(`${file}.tmp-${process.pid}`, JSON.stringify(record));
  renameSync(`${file}.tmp-${process.pid}`, file);
}

export function readPort(dir: string, namespace: string, port: number): PortRecord | undefined {
  try {
    return JSON.parse(readFileSync(portFile(dir, namespace, port), 'utf8')) as PortRecord;
  } catch {
    return undefined;
  }
}

function install(emulation: ComposeEmulation): void {
  const { dir, namespace: self, hosts } = emulation;

  const originalListen = net.Server.prototype.listen;
  net.Server.prototype.listen = function listen(this: net.Server, ...args: unknown[]): net.Server {
    const [first, second] = args;
    const callback = args.find((a): a is () => void => typeof a === 'function');
    let port: number | undefined;
    let host: string | undefined;
    if (
      typeof first === 'object' &&
      first !== null &&
      !('path' in first && (first as { path?: unknown }).path !== undefined)
    ) {
      const options = first as { port?: number | string; host?: string };
      port = options.port === undefined ? undefined : Number(options.port);
      host = options.host;
    } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
      port = Number(first);
      host = typeof second === 'string' ? second : undefined;
    }
    // A socket path, a handle, or an ephemeral port: nothing to map.
    if (port === undefined || port === 0 || Number.isNaN(port))
      return originalListen.apply(this, args as Parameters<typeof originalListen>);
    const asked = port;
    const everyInterface = host === undefined || !LOOPBACK.has(host);
    this.once('listening', () => {
      const address = this.address();
      if (typeof address === 'object' && address !== null)
        recordPort(dir, self, asked, { port: address.port, everyInterface });
    });
    const options = { ...(typeof first === 'object' && first !== null ? first : {}), port: 0, host: '127.0.0.1' };
    return callback === undefined ? originalListen.call(this, options) : originalListen.call(this, options, callback);
  };

  const originalConnect = net.Socket.prototype.connect as (this: net.Socket, ...args: unknown[]) => net.Socket;
  net.Socket.prototype.connect = function connect(this: net.Socket, ...args: unknown[]): net.Socket {
    // net.connect passes its normalized [options, callback] as one array.
    const [options, callback] = (Array.isArray(args[0]) ? args[0] : normalize(args)) as [
      Record<string, unknown>,
      (() => void) | undefined,
    ];
    if (typeof options !== 'object' || options === null || options.path !== undefined)
      return originalConnect.apply(this, args);
    const host = typeof options.host === 'string' ? options.host : 'localhost';
    const port = Number(options.port);
    const namespace = LOOPBACK.has(host) ? self : hosts[host];
    if (namespace === undefined) return originalConnect.apply(this, args);
    const record = readPort(dir, namespace, port);
    if (record === undefined || (namespace !== self && !record.everyInterface)) {
      const error = Object.assign(new Error(`connect ECONNREFUSED ${host}:${port}`), {
        code: 'ECONNREFUSED',
        errno: -111,
        syscall: 'connect',
        address: host,
        port,
      });
      process.nextTick(() => this.destroy(error));
      return this;
    }
    const rewritten = { ...options, host: '127.0.0.1', port: record.port };
    return callback === undefined
      ? originalConnect.call(this, rewritten)
      : originalConnect.call(this, rewritten, callback);
  };
}

/** `connect(port[, host][, cb])` and `connect(options[, cb])` as [options, cb]. */
function normalize(args: readonly unknown[]): [unknown, unknown] {
  const callback = args.find((a) => typeof a === 'function');
  const [first, second] = args;
  if (typeof first === 'object' && first !== null) return [first, callback];
  if (typeof first === 'string' && !/^\d+$/.test(first)) return [{ path: first }, callback];
  return [{ port: first, host: typeof second === 'string' ? second : undefined }, callback];
}

const spec = process.env[COMPOSE_EMULATION];
if (spec !== undefined) install(JSON.parse(spec) as ComposeEmulation);
