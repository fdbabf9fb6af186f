/**
 * A sidecar process and its workload identity: not ready, and saying why,
 * without a certificate; ready once the files appear (no restart); and one
 * loud line when it runs in plaintext mode.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { request } from 'undici';
import { stringify } from 'yaml';
import { makeTestIdentities, type TestIdentities } from '../helpers/identities.ts';
import { freePort, waitFor } from '../helpers/net.ts';
import { type RunningProcess, startBaton } from '../helpers/process.ts';

const POLICY =
  'apiVersion: baton.dev/v1alpha1\nkind: CallGraph\nmetadata: { name: s }\nspec:\n  services:\n    gateway: { entrypoint: true }\n';

describe('baton sidecar and its workload identity', { timeout: 90_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-identity-'));
  const running: RunningProcess[] = [];
  let ids: TestIdentities | undefined;
  after(async () => {
    await Promise.all(running.map((p) => p.stop()));
    ids?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  const admin = async (port: number, path: string) => {
    const response = await request(`http://127.0.0.1:${port}${path}`);
    return { status: response.statusCode, text: await response.body.text() };
  };

  it('is not ready without its certificate, says why, and reports the identity in its metrics', async () => {
    writeFileSync(join(dir, 'callgraph.yaml'), POLICY);
    const adminPort = await freePort();
    const identityDir = join(dir, 'missing');
    writeFileSync(
      join(dir, 'mtls.yaml'),
      stringify({
        service: 'gateway',
        inbound: { port: await freePort(), app: 'http://127.0.0.1:9' },
        outbound: { port: await freePort() },
        admin: { port: adminPort },
        sts: { issuer: `https://127.0.0.1:${await freePort()}`, clientId: 'gateway' },
        policy: { file: join(dir, 'callgraph.yaml') },
        identity: {
          certFile: join(identityDir, 'tls.crt'),
          keyFile: join(identityDir, 'tls.key'),
          bundleFile: join(identityDir, 'ca.crt'),
          pollIntervalMs: 200,
        },
        spiffe: { trustDomain: 'baton.test', namespace: 'test' },
      }),
    );
    const sidecar = startBaton(['sidecar', '--config', join(dir, 'mtls.yaml')]);
    running.push(sidecar);
    const notReady = await waitFor(
      async () => {
        const r = await admin(adminPort, '/readyz').catch(() => undefined);
        return r !== undefined && r.status === 503 && r.text.includes('identity: missing') ? r : undefined;
      },
      { timeoutMs: 30_000, what: 'readyz naming the missing identity' },
    );
    assert.match(notReady.text, /waiting for .*identity/);
    assert.match(notReady.text, /BATON_IDENTITY_MISSING/);
    const metrics = await admin(adminPort, '/metrics');
    assert.match(metrics.text, /baton_identity_state\{state="missing"\} 1/);
    assert.match(metrics.text, /baton_dependency_ready\{dependency="identity"\} 0/);
    assert.doesNotMatch(sidecar.stdout(), /transport_plaintext/);

    // The files appear (the CSI driver mounted them late): picked up without a restart.
    ids = await makeTestIdentities(['gateway']);
    const { mkdirSync, copyFileSync } = await import('node:fs');
    mkdirSync(identityDir);
    const source = ids.files('gateway');
    copyFileSync(source.keyFile, join(identityDir, 'tls.key'));
    copyFileSync(source.bundleFile, join(identityDir, 'ca.crt'));
    copyFileSync(source.certFile, join(identityDir, 'tls.crt'));
    await waitFor(
      async () => (await admin(adminPort, '/metrics')).text.includes('baton_identity_state{state="ready"} 1'),
      { timeoutMs: 15_000, what: 'identity ready' },
    );
    const after = await admin(adminPort, '/readyz');
    // Still not ready (no STS here), but no longer for the identity.
    assert.doesNotMatch(after.text, /waiting for .*identity/);
    assert.match(after.text, /identity: ready, expires in \d+s/);
  });

  it('says once, loudly, that it runs in plaintext mode', async () => {
    const adminPort = await freePort();
    writeFileSync(
      join(dir, 'plaintext.yaml'),
      stringify({
        service: 'gateway',
        inbound: { port: await freePort(), app: 'http://127.0.0.1:9' },
        outbound: { port: await freePort() },
        admin: { port: adminPort },
        sts: {
          issuer: `http://127.0.0.1:${await freePort()}`,
          clientId: 'gateway',
          clientSecret: 'a-secret-for-the-test',
        },
        policy: { file: join(dir, 'callgraph.yaml') },
        transport: { mode: 'plaintext' },
      }),
    );
    const sidecar = startBaton(['sidecar', '--config', join(dir, 'plaintext.yaml')]);
    running.push(sidecar);
    await sidecar.waitForOutput(/"event":"listening"/, 30_000);
    const warnings = sidecar
      .stdout()
      .split('\n')
      .filter((line) => line.includes('"event":"transport_plaintext"'));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] as string, /"level":"warn".*PLAINTEXT MODE/);
    const metrics = await admin(adminPort, '/metrics');
    assert.doesNotMatch(metrics.text, /baton_identity_state/);
  });
});
