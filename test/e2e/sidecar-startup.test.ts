import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { freePort } from '../helpers/net.ts';
import { startBaton } from '../helpers/process.ts';

describe('baton sidecar start-up', () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-startup-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('exits non-zero at once when a port is taken, instead of lingering half-started', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const address = taken.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    try {
      writeFileSync(join(dir, 'callgraph.yaml'), 'apiVersion: baton.dev/v1alpha1\nkind: CallGraph\nmetadata: { name: s }\nspec:\n  services:\n    gateway: { entrypoint: true }\n');
      writeFileSync(
        join(dir, 'sidecar.yaml'),
        stringify({
          service: 'gateway',
          // The admin port opens last: by then the data-plane listeners and the policy source are running.
          inbound: { port: await freePort(), app: 'http://127.0.0.1:9' },
          outbound: { port: await freePort() },
          admin: { port },
          sts: { issuer: `http://127.0.0.1:${await freePort()}`, clientId: 'gateway', clientSecret: 'a-secret-for-the-test' },
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
});
