import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runBaton, startBaton } from '../helpers/process.ts';

// Each runs the whole demo mesh (nine processes): a suite of its own, with room for a loaded machine.
describe('baton demo --logs DIR, for a newcomer trying the audit tools', { timeout: 180_000 }, () => {
  const logDir = join(mkdtempSync(join(tmpdir(), 'baton-demo-logs-')), 'logs');
  after(() => rmSync(join(logDir, '..'), { recursive: true, force: true }));

  it("writes every process's log and prints audit, observed and suggest commands that work as printed", async () => {
    const demo = await runBaton(['demo', '--logs', logDir]);
    assert.equal(demo.code, 0, demo.stderr.slice(-2000));
    assert.deepEqual(readdirSync(logDir).sort(), [
      'gateway-app.log',
      'gateway-sidecar.log',
      'idp.log',
      'orders-app.log',
      'orders-sidecar.log',
      'payments-app.log',
      'payments-sidecar.log',
      'policy-server.log',
      'sts.log',
    ]);
    const printed = demo.stdout
      .split('\n')
      .filter((line) => line.startsWith('  baton '))
      .map((line) => line.trim().split(' ').slice(1));
    // --txn=ID and --request=ID: an id may start with '-', which would read as a flag after a space.
    assert.deepEqual(
      printed.map((argv) => `${argv[0]} ${argv[1]?.replace(/=.*$/, '=')}`),
      ['audit --txn=', 'audit --request=', 'policy observed', 'policy suggest'],
    );
    const [auditTxn, auditRequest, observed, suggest] = await Promise.all(printed.map((argv) => runBaton(argv)));
    assert.equal(auditTxn?.code, 0);
    assert.match(String(auditTxn?.stdout), /^hops: +gateway → orders → payments$/m);
    assert.equal(auditRequest?.code, 0);
    assert.match(String(auditRequest?.stdout), /^hops: +gateway → orders → payments$/m);
    assert.equal(observed?.code, 0, observed?.stderr);
    assert.match(String(observed?.stdout), /used but not declared[^]*gateway → payments/);
    // payments.accepts.charge requires acr: the lines record it, so the rule shows as used.
    assert.doesNotMatch(String(observed?.stdout), /allowed nothing:[^]*payments\.accepts\.charge(?![-\w])/);
    assert.equal(suggest?.code, 0, suggest?.stderr);
    assert.match(String(suggest?.stdout), /^kind: CallGraph$/m);
  });
});

describe('baton demo --keep', { timeout: 120_000 }, () => {
  it('--keep says when it stops, and stops', async () => {
    const demo = startBaton(['demo', '--keep']);
    try {
      await demo.waitForOutput(/Ctrl-C stops the mesh/, 60_000);
      assert.match(demo.stdout(), /direct-charge +# 403/);
      demo.child.kill('SIGINT');
      const code = await demo.exited;
      assert.equal(
        code,
        0,
        `signal ${demo.child.signalCode}\n${demo.stdout().slice(-600)}\n${demo.stderr().slice(-2000)}`,
      );
      assert.match(demo.stdout(), /baton demo: SIGINT, stopping the mesh \(\d+ processes\)…\nbaton demo: stopped\.\n$/);
    } finally {
      await demo.stop('SIGKILL');
    }
  });
});
