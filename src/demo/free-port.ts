/**
 * A free TCP port on loopback for a process that will bind it later.
 *
 * Not port 0's kernel choice: that comes from the ephemeral range, which
 * every outgoing connection also draws its local port from, so under load
 * a port released here can be taken by some client's socket before the
 * child process binds it (seen as EADDRINUSE in CI). Ports are picked at
 * random below the ephemeral range instead and checked by binding.
 *
 * Ports are also reserved across processes for a few minutes: `node --test`
 * runs test files in parallel processes, each starting meshes of a dozen
 * children, and two random draws from ~22 000 ports collide often enough
 * (birthday odds of a few percent per pair of meshes) to fail a CI run with
 * EADDRINUSE between the check here and the child's bind. A reservation is
 * a file created with O_EXCL in a shared folder under the system's tmpdir,
 * so no two processes on the machine hand out the same port inside the
 * window; a stale file (older than the window) is taken over.
 *
 * Only ports that fetch() accepts: the WHATWG Fetch standard blocks a list of
 * "bad ports" (10080 is in this range), and Node's fetch and undici's refuse
 * them with `fetch failed … bad port` before connecting.
 */
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const FLOOR = 10_000;

/** https://fetch.spec.whatwg.org/#port-blocking: the ports fetch() refuses to connect to. */
export const FETCH_BAD_PORTS: ReadonlySet<number> = new Set([
  0, 1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109, 110,
  111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532,
  540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061,
  6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
]);

export function isFetchablePort(port: number): boolean {
  return Number.isInteger(port) && port > 0 && port < 65_536 && !FETCH_BAD_PORTS.has(port);
}

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > FLOOR + 1_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

const CEILING = ephemeralLow();

/** Long enough for any child to start and bind, and for a test that restarts a child on its old port. */
export const RESERVATION_MS = 10 * 60_000;
export const RESERVATIONS_DIR = join(tmpdir(), 'baton-free-ports');

/** `random` is Math.random's shape; a test passes its own to steer the choice. */
export async function freePort(random: () => number = Math.random): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = FLOOR + Math.floor(random() * (CEILING - FLOOR));
    if (isFetchablePort(port) && reserve(port) && (await canBind(port))) return port;
  }
  throw new Error(`no free loopback port found in ${FLOOR}-${CEILING - 1} after 100 tries`);
}

/** True when this call now holds the machine-wide reservation of `port`. */
export function reserve(port: number, now = Date.now()): boolean {
  const file = join(RESERVATIONS_DIR, String(port));
  try {
    mkdirSync(RESERVATIONS_DIR, { recursive: true });
    closeSync(openSync(file, 'wx'));
    return true;
  } catch (error) {
    // A folder this user cannot write (another user's tmpdir): no
    // reservations, only the bind check, as before they existed.
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') return true;
  }
  // Held: free again only once the window has passed. A stale file is
  // taken over by renaming it away (atomic: one renamer wins, the others
  // see ENOENT) and then created afresh with O_EXCL like any new one. Two
  // takers that both read it as stale within microseconds can still both
  // win; that needs the same draw in the same instant and is not worth a lock.
  try {
    if (now - statSync(file).mtimeMs < RESERVATION_MS) return false;
    const away = `${file}.stale.${process.pid}`;
    renameSync(file, away);
    unlinkSync(away);
    closeSync(openSync(file, 'wx', 0o666));
    return true;
  } catch {
    return false;
  }
}

/**
 * Listens on a kernel-chosen loopback port that fetch() accepts, for a server
 * bound in this process (no race with a child). The ephemeral range is
 * configurable (ip_local_port_range) and may cover a bad port; such a port
 * is released and another one taken.
 */
export async function listenOnLoopback(server: Server): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    if (address !== null && typeof address === 'object' && isFetchablePort(address.port)) return address.port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  throw new Error('the kernel offered only ports that fetch() refuses after 20 tries');
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}
