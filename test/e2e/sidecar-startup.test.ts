import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { freePort, listenOnLoopback } from '../helpers/net.ts';
import { startBaton } from '../helpers/process.ts';

describe('baton sidecar start-up', () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-startup-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('exits non-zero at once when a port is taken, instead of lingering half-started', async () => {
    const taken = createServer();
    await listenOnLoopback(taken);
    const address = taken.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    try {
      writeFileSync(
        join(dir, 'callgraph.yaml'),
        'apiVersion: baton.dev/v1alpha1\nkind: CallGraph\nmetadata: { name: s }\nspec:\n  services:\n    gateway: { entrypoint: true }\n',
      );
      writeFileSync(
        join(dir, 'sidecar.yaml'),
        stringify({
          service: 'gateway',
          // The admin port opens last: by then the data-plane listeners and the policy source are running.
          inbound: { port: await freePort(), app: 'http://127.0.0.1:9' },
          outbound: { port: await freePort() },
          admin: { port },
          sts: {
            issuer: `http://127.0.0.1:${await freePort()}`,
            clientId: 'gateway',
            clientSecret: 'a-secret-for-the-test',
          },
          transport: { mode: 'plaintext' },
          policy: { file: join(dir, 'callgraph.yaml') },
        }),
      );
      const started = Date.now();
      const sidecar = startBaton(['sidecar', '--config', join(dir, 'sidecar.yaml')]);
      const timer = setTimeout(() => sidecar.child.kill('SIGKILL'), 15_000);
      const code = await sidecar.exited;
      clearTimeout(timer);
      assert.notEqual(code, 0);
      assert.equal(sidecar.child.signalCode, null, 'it exited by itself, it was not killed');
      assert.match(sidecar.stderr(), /EADDRINUSE/);
      assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
    } finally {
      taken.close();
    }
  });

  async function startWithPolicy(name: string, policyText: string) {
    const policyFile = join(dir, `${name}.callgraph.yaml`);
    writeFileSync(policyFile, policyText);
    const admin = await freePort();
    writeFileSync(
      join(dir, `${name}.sidecar.yaml`),
      stringify({
        service: 'orders',
        inbound: { port: await freePort(), app: 'http://127.0.0.1:9' },
        outbound: { port: await freePort() },
        admin: { port: admin },
        // Nothing listens there: the sidecar also waits for the STS, which must not hide the policy problem.
        transport: { mode: 'plaintext' },
        sts: {
          issuer: `http://127.0.0.1:${await freePort()}`,
          clientId: 'orders',
          clientSecret: 'a-secret-for-the-test',
        },
        policy: { file: policyFile },
      }),
    );
    const sidecar = startBaton(['sidecar', '--config', join(dir, `${name}.sidecar.yaml`)]);
    const readyz = async (): Promise<{ status: number; body: string }> => {
      const response = await fetch(`http://127.0.0.1:${admin}/readyz`);
      return { status: response.status, body: await response.text() };
    };
    return { sidecar, policyFile, readyz };
  }

  it('says in one plain line, and in /readyz, that its own service is not in the policy; and again when that is fixed', async () => {
    const { sidecar, policyFile, readyz } = await startWithPolicy(
      'no-orders',
      'apiVersion: baton.dev/v1alpha1\nkind: CallGraph\nmetadata: { name: shop }\nspec:\n  services:\n    gateway: { entrypoint: true }\n',
    );
    try {
      const line = await sidecar.waitForOutput(/^baton sidecar orders: NOT READY: .*$/m, 60_000);
      assert.match(line, /service 'orders' is not in call-graph policy 'shop'/);
      assert.ok(!line.startsWith('{'), 'a plain line, not only a JSON log line');
      const answer = await readyz();
      assert.equal(answer.status, 503);
      assert.match(answer.body, /waiting for policy/);
      assert.match(answer.body, /service 'orders' is not in call-graph policy 'shop'/);

      writeFileSync(
        policyFile,
        'apiVersion: baton.dev/v1alpha1\nkind: CallGraph\nmetadata: { name: shop }\nspec:\n  services:\n    gateway: { entrypoint: true }\n    orders:\n      accepts: [{ from: gateway }]\n',
      );
      await sidecar.waitForOutput(/^baton sidecar orders: problem resolved/m, 60_000);
      const after = await readyz();
      assert.doesNotMatch(after.body, /policy/);
    } finally {
      await sidecar.stop();
    }
  });

  it('says in one plain line, and in /readyz, where a policy that does not parse is wrong', async () => {
    const { sidecar, policyFile, readyz } = await startWithPolicy(
      'broken',
      'apiVersion: baton.dev/v1alpha1\nkind: CallGraph\nspec: [\n',
    );
    try {
      const line = await sidecar.waitForOutput(/^baton sidecar orders: NOT READY: .*$/m, 60_000);
      assert.ok(line.includes(`no usable call-graph policy: ${policyFile}:`), line);
      const answer = await readyz();
      assert.equal(answer.status, 503);
      assert.ok(answer.body.includes(`${policyFile}:`), answer.body);
      assert.equal(sidecar.child.exitCode, null, 'it stays up, unready, waiting for a good policy');
    } finally {
      await sidecar.stop();
    }
  });
});
