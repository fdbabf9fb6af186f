/**
 * The admin port's view of the workload identity: what an operator reads in
 * `/readyz` and `/metrics` when a rotation to another service's certificate
 * was refused (issue #23).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { request } from 'undici';
import { createWorkloadIdentity, readSvidFiles, type WorkloadIdentity } from '../../src/identity/workload-identity.ts';
import { createAdminHandler } from '../../src/sidecar/admin.ts';
import { createSidecarMetrics } from '../../src/sidecar/metrics.ts';
import { createRuntimeMetrics } from '../../src/telemetry/runtime-metrics.ts';
import { makeTestIdentities, type TestIdentities } from '../helpers/identities.ts';
import { listenOnLoopback } from '../helpers/net.ts';

describe('sidecar admin port and the workload identity', () => {
  let ids: TestIdentities;
  let identity: WorkloadIdentity;
  let clock = Date.now();
  let base: string;
  const server = createServer();

  before(async () => {
    ids = await makeTestIdentities(['orders', 'payments']);
    identity = createWorkloadIdentity({
      ...ids.files('orders'),
      pollIntervalMs: 60_000,
      nearExpiryFraction: 1 / 6,
      logger: pino({ level: 'silent' }),
      now: () => clock,
    });
    const ready = (): boolean => identity.current() !== undefined;
    server.on(
      'request',
      createAdminHandler({
        ready,
        waitingFor: () => (ready() ? [] : ['identity']),
        metrics: createSidecarMetrics(),
        runtime: createRuntimeMetrics('sidecar', 'orders'),
        identity: () => identity.status(),
      }),
    );
    await listenOnLoopback(server);
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  after(async () => {
    identity.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    ids.cleanup();
  });

  const get = async (path: string): Promise<{ status: number; text: string }> => {
    const response = await request(`${base}${path}`);
    return { status: response.statusCode, text: await response.body.text() };
  };

  it('counts a refused rotation, stays ready on its own certificate, and once that expires says which file named which ID', async () => {
    const files = ids.files('orders');
    const notAfter = identity.current()?.notAfter as number;
    const other = readSvidFiles(ids.files('payments'));
    writeFileSync(files.keyFile, other.key);
    writeFileSync(files.certFile, other.cert);
    identity.reload();

    assert.match((await get('/metrics')).text, /^baton_identity_rotations_refused_total 1$/m);
    const ready = await get('/readyz');
    assert.equal(ready.status, 200);
    assert.match(ready.text, /^identity: ready, expires in \d+s, BATON_IDENTITY_ID_CHANGED \(/m);

    clock = notAfter + 1_000;
    const notReady = await get('/readyz');
    assert.equal(notReady.status, 503);
    assert.match(notReady.text, /waiting for identity/);
    const line = notReady.text.split('\n').find((l) => l.startsWith('identity: expired')) ?? '';
    for (const part of [files.certFile, ids.map.idOf('orders'), ids.map.idOf('payments')])
      assert.ok(line.includes(part), `readyz names ${part}: ${line}`);
    assert.match((await get('/metrics')).text, /^baton_identity_state\{state="expired"\} 1$/m);
  });
});
