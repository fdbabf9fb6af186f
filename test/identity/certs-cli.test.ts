import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseSvid } from '../../src/identity/svid.ts';
import { createServiceMap } from '../../src/identity/service-map.ts';
import { runCli } from '../helpers/cli.ts';

describe('baton certs (docs/identity.md)', () => {
  const out = mkdtempSync(join(tmpdir(), 'baton-certs-cli-'));
  after(() => rmSync(out, { recursive: true, force: true }));
  const map = createServiceMap({
    trustDomain: 'cluster.local',
    namespace: 'default',
    template: '/ns/{namespace}/sa/{service}',
    ids: {},
  });

  it('writes a CA and one X509-SVID per service in the csi-driver-spiffe layout, keys readable by their owner only', async () => {
    const run = await runCli([
      'certs',
      '--out',
      out,
      '--trust-domain',
      'cluster.local',
      'gateway',
      'orders',
      'payments',
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /DEVELOPMENT/);
    for (const service of ['gateway', 'orders', 'payments']) {
      const read = (name: string) => readFileSync(join(out, service, name), 'utf8');
      const svid = parseSvid({ cert: read('tls.crt'), key: read('tls.key'), bundle: read('ca.crt') }, Date.now());
      assert.equal(map.serviceOf(svid.spiffeId), service);
      assert.equal(statSync(join(out, service, 'tls.key')).mode & 0o077, 0, `${service}'s key is private to its owner`);
    }
    assert.equal(statSync(join(out, 'ca', 'ca.key')).mode & 0o077, 0);
  });

  it('keeps fresh certificates and the CA on a second run, and issues only what is missing', async () => {
    const before = readFileSync(join(out, 'orders', 'tls.crt'), 'utf8');
    const ca = readFileSync(join(out, 'ca', 'ca.crt'), 'utf8');
    const run = await runCli(['certs', '--out', out, '--trust-domain', 'cluster.local', 'orders', 'billing']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /kept {3}orders/);
    assert.match(run.stdout, /issued billing/);
    assert.equal(readFileSync(join(out, 'orders', 'tls.crt'), 'utf8'), before);
    assert.equal(readFileSync(join(out, 'ca', 'ca.crt'), 'utf8'), ca);
  });

  it('refuses a service name that is not a DNS-1123 label, and a bad trust domain, with exit status 2', async () => {
    assert.equal((await runCli(['certs', '--out', out, 'Orders'])).code, 2);
    assert.equal((await runCli(['certs', '--out', out, '--trust-domain', 'Cluster.Local', 'orders'])).code, 2);
    assert.equal((await runCli(['certs', 'orders'])).code, 2);
  });
});
