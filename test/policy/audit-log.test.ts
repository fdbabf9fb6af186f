import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseDecisionLine, parseSince, readAuditLogs } from '../../src/policy/tooling/audit-log.ts';
import { AuditInputInvalidError } from '../../src/telemetry/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'baton-audit-log-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function line(fields: Record<string, unknown>): string {
  return JSON.stringify({
    level: 'info',
    time: '2025-03-01T10:00:00.000Z',
    service: 'payments',
    event: 'decision',
    direction: 'inbound',
    chain: ['gateway', 'orders'],
    target: 'payments',
    method: 'POST',
    path: '/charges',
    user: true,
    scopes: ['payments:charge'],
    rule: 'payments.accepts.charge',
    decision: 'allow',
    txn: 't1',
    msg: 'decision',
    ...fields,
  });
}

describe('audit log reading', () => {
  it('reads a sidecar decision line with its chain, route, rule, user, scopes and subject issuer', () => {
    const decision = parseDecisionLine(line({ subjectIssuer: 'https://idp.example.test' }));
    assert.deepEqual(decision, {
      time: Date.parse('2025-03-01T10:00:00.000Z'),
      service: 'payments',
      event: 'decision',
      component: 'sidecar',
      direction: 'inbound',
      chain: ['gateway', 'orders'],
      target: 'payments',
      method: 'POST',
      path: '/charges',
      rule: 'payments.accepts.charge',
      decision: 'allow',
      txn: 't1',
      user: true,
      scopes: ['payments:charge'],
      subjectIssuer: 'https://idp.example.test',
    });
  });

  it("reads the token's acr, telling a token without one (null) from a line written before acr was logged", () => {
    assert.equal(parseDecisionLine(line({ acr: 'urn:baton:acr:mfa' }))?.acr, 'urn:baton:acr:mfa');
    assert.equal(parseDecisionLine(line({ acr: null }))?.acr, null);
    assert.equal(parseDecisionLine(line({}))?.acr, undefined);
  });

  it('accepts a pino epoch-millisecond time and a line with a container runtime prefix', () => {
    assert.equal(parseDecisionLine(line({ time: 1_700_000_000_000 }))?.time, 1_700_000_000_000);
    assert.equal(parseDecisionLine(`2025-03-01T10:00:00Z stdout F ${line({})}`)?.target, 'payments');
  });

  it('reads lines written before user and scopes were logged, leaving them unknown', () => {
    const decision = parseDecisionLine(line({ user: undefined, scopes: undefined }));
    assert.equal(decision?.user, undefined);
    assert.equal(decision?.scopes, undefined);
  });

  it('skips other events, non-JSON text and malformed decision lines', () => {
    for (const text of [
      'starting sidecar',
      '{"event":"decision",',
      line({ event: 'request_failed' }),
      line({ component: 'sts' }),
      line({ service: undefined }),
      line({ decision: 'maybe' }),
      line({ direction: 'sideways' }),
      line({ chain: 'gateway' }),
      line({ chain: [1, 2] }),
      line({ target: '' }),
      JSON.stringify({ event: 'would_deny', rule: 'x', decision: 'would_deny' }),
    ]) {
      assert.equal(parseDecisionLine(text), undefined, text);
    }
  });

  it('walks directories, counts what it skips, and filters by --since on the time field', async () => {
    const logs = join(dir, 'walk');
    mkdirSync(join(logs, 'nested'), { recursive: true });
    writeFileSync(
      join(logs, 'a.log'),
      ['not json', line({ time: '2025-03-01T09:00:00.000Z' }), line({ time: '2025-03-01T11:00:00.000Z' })].join('\n') +
        '\n',
    );
    writeFileSync(
      join(logs, 'nested', 'b.log'),
      line({ time: '2025-03-01T12:00:00.000Z', direction: 'outbound', service: 'orders' }) + '\n',
    );
    writeFileSync(join(logs, '.hidden'), line({}) + '\n');

    const all = await readAuditLogs([logs]);
    assert.equal(all.files, 2);
    assert.equal(all.decisions.length, 3);
    assert.equal(all.skipped, 1);

    const recent = await readAuditLogs([logs], { since: Date.parse('2025-03-01T10:30:00.000Z') });
    assert.deepEqual(
      recent.decisions.map((d) => d.time),
      [Date.parse('2025-03-01T11:00:00.000Z'), Date.parse('2025-03-01T12:00:00.000Z')],
    );
    assert.equal(recent.tooOld, 1);
  });

  it('refuses a log path that does not exist', async () => {
    await assert.rejects(readAuditLogs([join(dir, 'missing')]), {
      code: AuditInputInvalidError.code,
      reason: 'unreadable',
    });
  });

  it('takes --since as an ISO time or a duration before now, and refuses anything else', () => {
    const now = Date.parse('2025-03-01T12:00:00Z');
    assert.equal(parseSince('2025-03-01T10:00:00Z', now), Date.parse('2025-03-01T10:00:00Z'));
    assert.equal(parseSince('30m', now), now - 30 * 60_000);
    assert.equal(parseSince('7d', now), now - 7 * 86_400_000);
    for (const bad of ['1', 'yesterday', '10y', ''])
      assert.throws(() => parseSince(bad, now), { code: AuditInputInvalidError.code, reason: 'since' });
  });
});
