/**
 * A free TCP port on loopback for a process that will bind it later.
 *
 * Not port 0's kernel choice: that comes from the ephemeral range, which
 * every outgoing connection also draws its local port from, so under load
 * a port released here can be taken by some client's socket before the
 * child process binds it (seen as EADDRINUSE in CI). Ports are picked at
 * random below the ephemeral range instead and checked by binding.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const FLOOR = 10_000;

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > FLOOR + 1_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

const CEILING = ephemeralLow();

export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = FLOOR + Math.floor(Math.random() * (CEILING - FLOOR));
    if (await canBind(port)) return port;
  }
  throw new Error(`no free loopback port found in ${FLOOR}-${CEILING - 1} after 100 tries`);
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}
