/**
 * The audit trail loses no line under load: real sidecar processes at the
 * default log level (the per-decision line on) take a bounded burst of
 * concurrent calls and are sent SIGTERM as soon as the last answer is in,
 * while lines may still be queued in the asynchronous log writer
 * (src/telemetry/logger.ts). Every call must have its decision line at
 * every hop, each once.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startMesh } from '../../src/demo/mesh.ts';
import { DEMO_USER, postInbound } from '../../src/demo/scenario.ts';

const CALLS = 300;
const CONCURRENCY = 24;

describe('audit lines under load, then SIGTERM', { timeout: 180_000 }, () => {
  it('writes one decision line per call at every hop, none lost and none doubled', async () => {
    const mesh = await startMesh();
    let statuses: number[];
    try {
      const authorization = `Bearer ${await mesh.userToken(DEMO_USER)}`;
      statuses = [];
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < CALLS) {
            next++;
            statuses.push((await postInbound(mesh.services.gateway.entry, '/checkout', authorization)).status);
          }
        }),
      );
    } finally {
      // At once: whatever the writers still hold must be flushed on the way out.
      await mesh.stop();
    }
    assert.equal(statuses.length, CALLS);
    assert.deepEqual([...new Set(statuses)], [200]);

    const decisions = (name: string, direction: string) => {
      const process = mesh.processes.find((p) => p.name === name);
      assert.ok(process !== undefined, `no process ${name}`);
      const lines = process.logs.filter((line) => line.event === 'decision' && line.direction === direction);
      return { count: lines.length, requests: new Set(lines.map((line) => line.request)).size };
    };
    // gateway: in from the user, out to orders; orders: in, out to payments; payments: in.
    for (const [name, direction] of [
      ['gateway-sidecar', 'inbound'],
      ['gateway-sidecar', 'outbound'],
      ['orders-sidecar', 'inbound'],
      ['orders-sidecar', 'outbound'],
      ['payments-sidecar', 'inbound'],
    ] as const) {
      assert.deepEqual(decisions(name, direction), { count: CALLS, requests: CALLS }, `${name} ${direction}`);
    }
  });
});
