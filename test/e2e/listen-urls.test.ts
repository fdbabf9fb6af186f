/**
 * The "listening" log line of each part names the URL it really serves:
 * https:// for the TLS listeners of the STS, the policy server (mtls mode)
 * and the injector, http:// for the plaintext admin ports and for plaintext
 * mode. An operator copies that URL into curl; a wrong scheme sends them
 * chasing a TLS error. Real processes: the demo mesh in mtls mode, an
 * injector, and an STS in plaintext mode.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { stringify } from 'yaml';
import { type Mesh, startMesh } from '../../src/demo/mesh.ts';
import { freePort } from '../helpers/net.ts';
import { runBaton, startBaton } from '../helpers/process.ts';
import { baseConfig } from '../helpers/sts.ts';

/** The JSON log line with this msg, from a process's output. */
function logLine(output: string, msg: string): Record<string, unknown> {
  const line = output.split('\n').find((l) => l.includes(`"msg":"${msg}"`));
  assert.ok(line !== undefined, `a "${msg}" line in:\n${output.slice(0, 2000)}`);
  return JSON.parse(line) as Record<string, unknown>;
}

describe('the listening line names the scheme each listener serves', { timeout: 180_000 }, () => {
  let mesh: Mesh;
  const dir = mkdtempSync(join(tmpdir(), 'baton-listen-urls-'));
  before(async () => {
    mesh = await startMesh();
  });
  after(async () => {
    await mesh?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('mtls: "sts listening" and "policy server listening" say https://, their admin ports http://, and both answer on them', async () => {
    for (const [name, msg, served, admin] of [
      ['sts', 'sts listening', mesh.stsUrl, mesh.stsAdminUrl],
      ['policy-server', 'policy server listening', mesh.policyUrl, mesh.policyAdminUrl],
    ] as const) {
      const line = logLine(mesh.process(name).output(), msg);
      assert.equal(line.url, served, `${name}: ${JSON.stringify(line)}`);
      assert.match(String(line.url), /^https:\/\//);
      assert.equal(line.adminUrl, admin);
      assert.match(String(line.adminUrl), /^http:\/\//);
      // The logged URL works as written (trusting the mesh's CA), and the admin one in plain HTTP.
      const tls = await request(`${String(line.url)}/livez`, { dispatcher: mesh.identities?.dispatcher });
      await tls.body.dump();
      assert.equal(tls.statusCode, 200);
      const plain = await request(`${String(line.adminUrl)}/livez`);
      await plain.body.dump();
      assert.equal(plain.statusCode, 200);
    }
  });

  it('the injector says https://', async () => {
    const certs = await runBaton(['certs', '--out', join(dir, 'certs'), 'baton-injector']);
    assert.equal(certs.code, 0, certs.stderr);
    const injector = startBaton(
      [
        'injector',
        '--tls-cert',
        join(dir, 'certs/baton-injector/tls.crt'),
        '--tls-key',
        join(dir, 'certs/baton-injector/tls.key'),
        '--port',
        String(await freePort()),
      ],
      { BATON_HOST: '127.0.0.1' },
    );
    try {
      await injector.waitForOutput(/"msg":"injector listening"/, 30_000);
      assert.match(String(logLine(injector.stdout(), 'injector listening').url), /^https:\/\/127\.0\.0\.1:\d+$/);
    } finally {
      await injector.stop();
    }
  });

  it('plaintext mode: "sts listening" says http://', async () => {
    const port = await freePort();
    writeFileSync(
      join(dir, 'sts.yaml'),
      stringify({ ...baseConfig({ issuer: `http://127.0.0.1:${port}` }), port, logLevel: 'info' }),
    );
    const sts = startBaton(['sts', '--config', join(dir, 'sts.yaml')]);
    try {
      await sts.waitForOutput(/"msg":"sts listening"/, 30_000);
      assert.equal(logLine(sts.stdout(), 'sts listening').url, `http://127.0.0.1:${port}`);
    } finally {
      await sts.stop();
    }
  });
});
