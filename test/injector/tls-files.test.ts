/**
 * The webhook certificate's files: a renewal is taken without a restart,
 * a certificate for other names is not (issue #23).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { watchTlsFiles } from '../../src/injector/tls-files.ts';
import { captureLogs } from '../helpers/logs.ts';
import { waitFor } from '../helpers/net.ts';

describe('webhook certificate files', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'baton-webhook-tls-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** A self-signed certificate, as cert-manager would mount it, for `names`. */
  const make = (name: string, names: string): { cert: string; key: string } => {
    const cert = join(dir, `${name}.crt`);
    const key = join(dir, `${name}.key`);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${name}`, '-addext', `subjectAltName=${names}`], { stdio: 'ignore' });
    return { cert, key };
  };

  it('takes a renewal for the same names, refuses a certificate for other names, and says so once it must serve an expired one', async () => {
    const webhook = 'DNS:baton-injector.baton-system.svc,IP:127.0.0.1';
    const files = { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key') };
    const first = make('first', webhook);
    copyFileSync(first.key, files.key);
    copyFileSync(first.cert, files.cert);
    const logs = captureLogs('injector');
    let clock = Date.now();
    const tls = watchTlsFiles({ ...files, reloadIntervalMs: 50, now: () => clock }, logs.logger);
    try {
      const changes: string[] = [];
      tls.onChange((material) => changes.push(material.cert.toString('utf8')));

      // The same names, in another order: a renewal.
      const renewed = make('renewed', 'IP:127.0.0.1,DNS:baton-injector.baton-system.svc');
      copyFileSync(renewed.key, files.key);
      copyFileSync(renewed.cert, files.cert);
      await waitFor(async () => changes.length === 1, { timeoutMs: 5_000, what: 'the renewal taken' });

      // Another service's certificate written into the webhook's files.
      const other = make('other', 'DNS:payments.shop.svc,IP:127.0.0.1');
      copyFileSync(other.key, files.key);
      copyFileSync(other.cert, files.cert);
      await waitFor(async () => logs.lines.some((line) => line.event === 'tls_rotation_refused'), { timeoutMs: 5_000, what: 'the refusal logged' });
      const refusal = logs.lines.find((line) => line.event === 'tls_rotation_refused');
      assert.equal(refusal?.level, 'error');
      assert.deepEqual([refusal?.current, refusal?.offered], ['DNS:baton-injector.baton-system.svc, IP Address:127.0.0.1', 'DNS:payments.shop.svc, IP Address:127.0.0.1']);
      assert.equal(changes.length, 1, 'the renewed certificate is still the one served');
      assert.equal(tls.current().cert.toString('utf8'), changes[0]);
      assert.equal(tls.problem(), undefined, 'ready while the current certificate is valid');

      clock += 3 * 86_400_000;
      const problem = String(tls.problem());
      for (const part of [files.cert, 'DNS:baton-injector.baton-system.svc', 'DNS:payments.shop.svc']) assert.ok(problem.includes(part), `names ${part}: ${problem}`);
    } finally {
      tls.close();
    }
  });
});
