/**
 * Every listening socket of every part, against what a TCP health probe,
 * a port scanner or an attacker with no credential sends (issue #23): a
 * bare TCP connect and FIN, 1,000 times per port. Afterwards each
 * process's open files must be back at their baseline within 20 s; and
 * SIGTERM, sent while connections that never spoke are still open, must
 * end each part within its grace period. Before #23 the sidecar's mTLS
 * port kept every such socket half-open in CLOSE-WAIT for ever, one
 * descriptor each, and its shutdown never finished.
 *
 * Real processes: the demo mesh in mtls mode (STS, policy server, three
 * sidecars, each with its admin port) and a `baton injector`.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Mesh, startMesh } from '../../src/demo/mesh.ts';
import type { MeshProcess } from '../../src/demo/processes.ts';
import { freePort, waitFor } from '../helpers/net.ts';
import { type RunningProcess, startBaton } from '../helpers/process.ts';
import { selfSignedCertificate } from '../helpers/injector.ts';

const FLOOD = 1_000;
const BATCH = 100;
const BACK_WITHIN_MS = 20_000;
/** The sidecar's shutdown.graceMs default; the other parts drain at once and must be as quick. */
const GRACE_MS = 10_000;

const openFiles = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;
const portOf = (url: string): number => Number(new URL(url).port);

/** `count` bare TCP connects, each ended with a FIN as soon as it is up; resolves when every client side is done. */
async function connectAndFin(port: number, count: number): Promise<void> {
  for (let done = 0; done < count; done += BATCH) {
    await Promise.all(
      Array.from(
        { length: Math.min(BATCH, count - done) },
        () =>
          new Promise<void>((resolve) => {
            const socket = connect(port, '127.0.0.1', () => socket.end());
            socket.on('error', () => resolve());
            socket.resume();
            socket.on('finish', () => resolve());
            socket.on('close', () => resolve());
          }),
      ),
    );
  }
}

/** Connections that are opened and then say nothing: a handshake never started, a request never sent. */
async function silentConnections(port: number, count: number): Promise<Socket[]> {
  return Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Socket>((resolve) => {
          const socket = connect(port, '127.0.0.1', () => resolve(socket));
          socket.on('error', () => resolve(socket));
        }),
    ),
  );
}

interface Part {
  readonly name: string;
  readonly pid: () => number;
  readonly ports: () => Readonly<Record<string, number>>;
  readonly exited: () => Promise<number | null>;
  readonly signal: (signal: NodeJS.Signals) => void;
}

describe('a bare connect-and-FIN flood on every listening port of every part', { timeout: 300_000 }, () => {
  let mesh: Mesh;
  let injector: RunningProcess;
  let injectorPort: number;
  let dir: string;
  const parts: Part[] = [];

  before(async () => {
    mesh = await startMesh({ transport: 'mtls' });
    dir = mkdtempSync(join(tmpdir(), 'baton-flood-'));
    const { cert, key } = selfSignedCertificate(dir, 'injector');
    copyFileSync(cert, join(dir, 'ca.crt'));
    injectorPort = await freePort();
    injector = startBaton(['injector', '--tls-cert', cert, '--tls-key', key, '--port', String(injectorPort)]);
    await injector.waitForOutput(/injector listening/, 20_000);

    const meshPart = (process: MeshProcess, ports: Record<string, number>): Part => ({
      name: process.name,
      pid: () => process.child.pid as number,
      ports: () => ports,
      exited: () =>
        new Promise((resolve) =>
          process.child.exitCode !== null
            ? resolve(process.child.exitCode)
            : process.child.once('exit', (code) => resolve(code)),
        ),
      signal: (signal) => void process.child.kill(signal),
    });
    parts.push(meshPart(mesh.process('sts'), { tls: portOf(mesh.stsUrl), admin: portOf(mesh.stsAdminUrl) }));
    parts.push(
      meshPart(mesh.process('policy-server'), { tls: portOf(mesh.policyUrl), admin: portOf(mesh.policyAdminUrl) }),
    );
    for (const service of ['gateway', 'orders', 'payments'] as const) {
      const ports = mesh.services[service];
      parts.push(
        meshPart(mesh.process(`${service}-sidecar`), {
          'inbound (mTLS)': ports.inbound,
          outbound: ports.outbound,
          admin: ports.admin,
          ...(ports.entry === ports.inbound ? {} : { 'plaintext entry': ports.entry }),
        }),
      );
    }
    parts.push({
      name: 'injector',
      pid: () => injector.child.pid as number,
      ports: () => ({ tls: injectorPort }),
      exited: () =>
        new Promise((resolve) =>
          injector.child.exitCode !== null
            ? resolve(injector.child.exitCode)
            : injector.child.once('exit', (code) => resolve(code)),
        ),
      signal: (signal) => void injector.child.kill(signal),
    });
  });

  after(async () => {
    injector?.child.kill('SIGKILL');
    await mesh?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('leaves every process with its baseline of open files within 20 s', async () => {
    for (const part of parts) {
      const pid = part.pid();
      const baseline = openFiles(pid);
      for (const [name, port] of Object.entries(part.ports())) {
        await connectAndFin(port, FLOOD);
        const started = Date.now();
        await waitFor(async () => openFiles(pid) <= baseline, {
          timeoutMs: BACK_WITHIN_MS,
          intervalMs: 100,
          what: `${part.name}'s open files back at ${baseline} after ${FLOOD} connects to its ${name} port (now ${openFiles(pid)})`,
        });
        assert.ok(Date.now() - started < BACK_WITHIN_MS);
      }
    }
  });

  it('ends each part on SIGTERM within its grace period, with silent connections still open on every port', async () => {
    const held: Socket[] = [];
    try {
      for (const part of parts)
        for (const port of Object.values(part.ports())) held.push(...(await silentConnections(port, 20)));
      const timings = await Promise.all(
        parts.map(async (part) => {
          const started = Date.now();
          const exited = part.exited();
          part.signal('SIGTERM');
          const code = await Promise.race([
            exited,
            new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), GRACE_MS + 5_000).unref()),
          ]);
          return { name: part.name, code, ms: Date.now() - started };
        }),
      );
      const late = timings.filter((t) => t.code !== 0 || t.ms > GRACE_MS);
      assert.deepEqual(
        late,
        [],
        `every part exits 0 within ${GRACE_MS} ms of SIGTERM ('hung': still running ${GRACE_MS + 5_000} ms after)`,
      );
    } finally {
      for (const socket of held) socket.destroy();
    }
  });
});
