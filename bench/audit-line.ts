/**
 * The audit line's cost on the main thread (#28), before and after, in the
 * same run: one sidecar decision event written 50,000 times by
 * `writeAuditEvent` into a file, (a) through pino's sonic-boom as the
 * logger wrote before (async, 4 KiB minimum write, 200 ms periodic flush),
 * (b) through the batching line writer (src/telemetry/line-writer.ts).
 * Batches of 100 lines alternate between the two, and the event loop turns
 * between batches so sonic-boom's thread-pool writes run as they would in
 * a server. Then the write path alone: a prebuilt line into each.
 *
 *   node_modules/.bin/node bench/audit-line.ts
 *
 * Prints µs per line: main thread (inside the batches) and the process's
 * whole CPU (thread pool included). Not part of `npm run bench`.
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { type SidecarDecisionEvent, writeAuditEvent } from '../src/telemetry/audit-event.ts';
import { createLineWriter } from '../src/telemetry/line-writer.ts';
import { createLogger } from '../src/telemetry/logger.ts';

const LINES = 50_000;
const BATCH = 100;
const EVENT: SidecarDecisionEvent = {
  event: 'decision',
  component: 'sidecar',
  direction: 'inbound',
  subject: 'spiffe://mesh.local/ns/shop/sa/orders',
  subjectIssuer: 'http://127.0.0.1:41234',
  chain: ['orders'],
  target: 'payments',
  method: 'GET',
  path: '/bench',
  user: false,
  scopes: ['payments:read'],
  acr: null,
  rule: 'orders-to-payments',
  decision: 'allow',
  txn: 'b6b1c3f0-6c0e-4f4e-9d7b-2f8b1f0c9a11',
  request: 'kq3Jr5b1oX0aZ2cQ',
  policyVersion: 3,
};

const dir = mkdtempSync(join(tmpdir(), 'baton-bench-audit-line-'));
const oldFd = openSync(join(dir, 'old.log'), 'w');
const newFd = openSync(join(dir, 'new.log'), 'w');
const sonic = pino.destination({ dest: oldFd, sync: false, minLength: 4096, periodicFlush: 200 });
const before = createLogger({ name: 'payments', traceIds: false, destination: sonic });
const writer = createLineWriter({ fd: newFd, batchBytes: 16 * 1024, flushMs: 200 });
const after = createLogger({ name: 'payments', traceIds: false, destination: writer });
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const main = { before: 0n, after: 0n };
const cpu = { before: 0, after: 0 };
const VARIANTS = ['before', 'after'] as const;
for (let done = 0; done < LINES; done += BATCH) {
  for (const which of done % (2 * BATCH) === 0 ? VARIANTS : [...VARIANTS].reverse()) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < BATCH; i++) writeAuditEvent(which === 'before' ? before : after, EVENT);
    main[which] += process.hrtime.bigint() - t0;
    await turn();
    const c1 = process.cpuUsage(c0);
    cpu[which] += c1.user + c1.system;
  }
}
sonic.flushSync();
writer.close();
await new Promise((resolve) => {
  sonic.once('close', resolve);
  sonic.end();
});
closeSync(newFd);
const oldLines = readFileSync(join(dir, 'old.log'), 'utf8').split('\n');
const newLines = readFileSync(join(dir, 'new.log'), 'utf8').split('\n');
// Same lines but for the time: the shape of the record must not change.
const strip = (line: string): string => line.replace(/"time":"[^"]*"/, '');
if (oldLines.length !== newLines.length || strip(oldLines[0] as string) !== strip(newLines[0] as string))
  throw new Error(`bench: the lines differ:\n${oldLines[0]}\n${newLines[0]}`);

// The write path alone, a prebuilt line: sonic-boom's write against the line writer's, alternating, into files.
const line = `${newLines[0] as string}\n`;
const fdA = openSync(join(dir, 'sonic.log'), 'w');
const fdB = openSync(join(dir, 'writer.log'), 'w');
const sonicOnly = pino.destination({ dest: fdA, sync: false, minLength: 4096, periodicFlush: 200 });
const writerOnly = createLineWriter({ fd: fdB, batchBytes: 16 * 1024, flushMs: 200 });
const path = { sonic: 0n, writer: 0n };
for (let done = 0; done < LINES; done += BATCH) {
  for (const which of done % (2 * BATCH) === 0 ? (['sonic', 'writer'] as const) : (['writer', 'sonic'] as const)) {
    const t0 = process.hrtime.bigint();
    if (which === 'sonic') for (let i = 0; i < BATCH; i++) sonicOnly.write(line);
    else for (let i = 0; i < BATCH; i++) writerOnly.write(line);
    path[which] += process.hrtime.bigint() - t0;
    await turn();
  }
}
sonicOnly.flushSync();
writerOnly.close();
closeSync(fdB);
rmSync(dir, { recursive: true, force: true });

const us = (ns: bigint, n: number): string => (Number(ns) / 1000 / n).toFixed(2);
console.log(
  `audit line, ${LINES} lines each, alternating batches of ${BATCH} (load average ${(await import('node:os')).loadavg()[0]?.toFixed(1)}):`,
);
console.log(
  `  before (sonic-boom): ${us(main.before, LINES)} µs main thread, ${(cpu.before / LINES).toFixed(2)} µs process CPU per line`,
);
console.log(
  `  after (line writer): ${us(main.after, LINES)} µs main thread, ${(cpu.after / LINES).toFixed(2)} µs process CPU per line`,
);
console.log(
  `write path alone, a prebuilt ${line.length}-byte line: sonic-boom ${us(path.sonic, LINES)} µs, line writer ${us(path.writer, LINES)} µs (main thread)`,
);
