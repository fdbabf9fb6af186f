import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runCli } from '../helpers/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'baton-cli-suggest-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A sidecar decision line as baton writes it: `service` is the sidecar's (the callee inbound, the caller outbound). */
function line(fields: Record<string, unknown> & { chain: string[]; target: string }): string {
  const service = fields.direction === 'outbound' ? fields.chain.at(-1) : fields.target;
  return JSON.stringify({
    level: 'info',
    time: '2025-03-01T10:00:00Z',
    service,
    event: 'decision',
    component: 'sidecar',
    direction: 'inbound',
    user: true,
    txn: 't',
    msg: 'decision',
    ...fields,
  });
}

const LOG = join(dir, 'mesh.log');
writeFileSync(
  LOG,
  [
    line({
      chain: [],
      target: 'gateway',
      method: 'POST',
      path: '/checkout',
      scopes: ['shop', 'orders:write'],
      rule: 'gateway.entrypoint',
      decision: 'would_deny',
    }),
    line({
      chain: ['gateway'],
      target: 'orders',
      method: 'GET',
      path: '/orders/42',
      scopes: ['orders:write'],
      rule: 'spec.services',
      decision: 'would_deny',
    }),
    line({
      chain: ['gateway'],
      target: 'orders',
      method: 'GET',
      path: '/orders/43',
      scopes: ['orders:write'],
      rule: 'spec.services',
      decision: 'would_deny',
    }),
    line({
      chain: ['gateway'],
      target: 'payments',
      method: 'POST',
      path: '/charges',
      direction: 'outbound',
      rule: 'payments.accepts',
      decision: 'deny',
      cause: 'no_edge',
    }),
  ].join('\n') + '\n',
);

describe('baton policy suggest', () => {
  it('writes a CallGraph that baton policy check accepts without warnings', async () => {
    const out = join(dir, 'suggested.yaml');
    const result = await runCli(['policy', 'suggest', '--logs', LOG, '--name', 'shop', '--out', out]);
    assert.equal(result.code, 0, result.stderr);
    const yaml = readFileSync(out, 'utf8');
    assert.match(yaml, /^# Suggested by 'baton policy suggest' from 3 observed calls/);
    assert.match(yaml, /mode: shadow/);
    assert.match(yaml, /paths: \[ \/orders\/42, \/orders\/43 \]/);
    assert.doesNotMatch(yaml, /payments/);
    const check = await runCli(['policy', 'check', '--strict', out]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
  });

  it('generalises id segments with --generalize, includes denied calls with --include-denied, enforces with --mode enforce', async () => {
    const result = await runCli(['policy', 'suggest', LOG, '--generalize', '--include-denied', '--mode', 'enforce']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /paths: \[ "?\/orders\/\*"? \]/);
    assert.match(result.stdout, /from: gateway[\s\S]*payments|payments:[\s\S]*from: gateway/);
    assert.match(result.stdout, /mode: enforce/);
  });

  it('exits 1 when the logs hold no call to suggest from, 2 on a bad --mode', async () => {
    const empty = join(dir, 'empty.log');
    writeFileSync(empty, 'nothing here\n');
    assert.equal((await runCli(['policy', 'suggest', '--logs', empty])).code, 1);
    assert.equal((await runCli(['policy', 'suggest', '--logs', LOG, '--mode', 'audit'])).code, 2);
  });
});
