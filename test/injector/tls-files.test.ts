/**
 * The webhook certificate's files: a renewal is taken without a restart,
 * a certificate for other names is not (issue #23).
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { watchTlsFiles } from '../../src/injector/tls-files.ts';
import { selfSignedCertificate } from '../helpers/identities.ts';
import { captureLogs } from '../helpers/logs.ts';
import { waitFor } from '../helpers/net.ts';

describe('webhook certificate files', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'baton-webhook-tls-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** A self-signed certificate, as cert-manager would mount it, for `names`. */
  const make = async (name: string, names: string): Promise<{ cert: string; key: string }> => {
    const cert = join(dir, `${name}.crt`);
    const key = join(dir, `${name}.key`);
    const issued = await selfSignedCertificate(name, names);
    writeFileSync(key, issued.keyPem, { mode: 0o600 });
    writeFileSync(cert, issued.certPem);
    return { cert, key };
  };

  it('takes a renewal for the same names, refuses a certificate for other names, and says so once it must serve an expired one', async () => {
    const webhook = 'DNS:baton-injector.baton-system.svc,IP:127.0.0.1';
    const files = { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key') };
    const first = await make('first', webhook);
    copyFileSync(first.key, files.key);
    copyFileSync(first.cert, files.cert);
    const logs = captureLogs('injector');
    let clock = Date.now();
    const tls = watchTlsFiles({ ...files, reloadIntervalMs: 50, now: () => clock }, logs.logger);
    try {
      const changes: string[] = [];
      tls.onChange((material) => changes.push(material.cert.toString('utf8')));

      // The same names, in another order: a renewal.
      const renewed = await make('renewed', 'IP:127.0.0.1,DNS:baton-injector.baton-system.svc');
      copyFileSync(renewed.key, files.key);
      copyFileSync(renewed.cert, files.cert);
      await waitFor(async () => changes.length === 1, { timeoutMs: 5_000, what: 'the renewal taken' });

      // Another service's certificate written into the webhook's files.
      const other = await make('other', 'DNS:payments.shop.svc,IP:127.0.0.1');
      copyFileSync(other.key, files.key);
      copyFileSync(other.cert, files.cert);
      await waitFor(async () => logs.lines.some((line) => line.event === 'tls_rotation_refused'), {
        timeoutMs: 5_000,
        what: 'the refusal logged',
      });
      const refusal = logs.lines.find((line) => line.event === 'tls_rotation_refused');
      assert.equal(refusal?.level, 'error');
      assert.deepEqual(
        [refusal?.current, refusal?.offered],
        ['DNS:baton-injector.baton-system.svc, IP Address:127.0.0.1', 'DNS:payments.shop.svc, IP Address:127.0.0.1'],
      );
      assert.equal(changes.length, 1, 'the renewed certificate is still the one served');
      assert.equal(tls.current().cert.toString('utf8'), changes[0]);
      assert.equal(tls.problem(), undefined, 'ready while the current certificate is valid');

      clock += 3 * 86_400_000;
      const problem = String(tls.problem());
      for (const part of [files.cert, 'DNS:baton-injector.baton-system.svc', 'DNS:payments.shop.svc'])
        assert.ok(problem.includes(part), `names ${part}: ${problem}`);
    } finally {
      tls.close();
    }
  });
});
