import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runCli } from '../helpers/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'baton-cli-observed-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const POLICY = join(dir, 'shop.yaml');
writeFileSync(
  POLICY,
  `apiVersion: baton.dev/v1alpha1
kind: CallGraph
metadata: { name: shop }
spec:
  services:
    gateway: { entrypoint: true }
    orders:
      accepts:
        - { name: from-gateway, from: gateway, methods: [POST], paths: [/orders] }
        - { name: reconcile, from: billing-job, methods: [GET], paths: ["/orders/**"], user: none }
    payments:
      accepts:
        - { name: charge, from: orders, methods: [POST], paths: [/charges], scopes: "payments:charge and fido", mode: shadow }
    billing-job: {}
`,
);

function line(time: string, fields: Record<string, unknown>): string {
  return JSON.stringify({
    level: 'info',
    time,
    event: 'decision',
    method: 'POST',
    user: true,
    scopes: ['payments:charge'],
    txn: 't',
    msg: 'decision',
    ...fields,
  });
}

const LOGS = join(dir, 'logs');
mkdirSync(LOGS);
writeFileSync(
  join(LOGS, 'gateway-sidecar.log'),
  [
    'sidecar starting',
    line('2025-03-01T10:00:00Z', {
      service: 'gateway',
      direction: 'inbound',
      chain: [],
      target: 'gateway',
      path: '/checkout',
      rule: 'gateway.entrypoint',
      decision: 'allow',
    }),
    line('2025-03-01T10:00:01Z', {
      service: 'gateway',
      direction: 'outbound',
      chain: ['gateway'],
      target: 'orders',
      path: '/orders',
      rule: 'orders.accepts.from-gateway',
      decision: 'allow',
    }),
    line('2025-03-01T10:00:02Z', {
      service: 'gateway',
      direction: 'outbound',
      chain: ['gateway'],
      target: 'payments',
      path: '/charges',
      rule: 'payments.accepts',
      decision: 'deny',
      cause: 'no_edge',
    }),
  ].join('\n') + '\n',
);
writeFileSync(
  join(LOGS, 'payments-sidecar.log'),
  line('2025-03-01T12:00:00Z', {
    service: 'payments',
    direction: 'inbound',
    chain: ['gateway', 'orders'],
    target: 'payments',
    path: '/charges',
    rule: 'payments.accepts.charge',
    decision: 'would_deny',
    cause: 'scope',
  }) + '\n',
);

describe('baton policy observed', () => {
  it('prints the observed edges and, against a policy, undeclared, unused and shadow-only', async () => {
    const result = await runCli(['policy', 'observed', '--logs', LOGS, '--policy', POLICY]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^observed 4 calls on 4 edges/);
    assert.match(result.stdout, /used but not declared[^\n]*\n {4}gateway → payments/);
    assert.match(result.stdout, /never used[^\n]*\n {4}billing-job → orders/);
    assert.match(result.stdout, /only shadow-denied[^\n]*\n {4}payments\.accepts\.charge/);
  });

  it('prints JSON with --json', async () => {
    const result = await runCli([
      'policy',
      'observed',
      '--logs',
      join(LOGS, 'gateway-sidecar.log'),
      join(LOGS, 'payments-sidecar.log'),
      '--policy',
      POLICY,
      '--json',
    ]);
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout) as {
      calls: number;
      policy: { undeclared: Array<{ from: string; to: string }>; unusedEdges: Array<{ from: string }> };
    };
    assert.equal(report.calls, 4);
    assert.deepEqual(
      report.policy.undeclared.map((e) => `${e.from}→${e.to}`),
      ['gateway→payments'],
    );
    assert.deepEqual(
      report.policy.unusedEdges.map((e) => e.from),
      ['billing-job'],
    );
  });

  it('leaves out lines before --since', async () => {
    const result = await runCli(['policy', 'observed', '--logs', LOGS, '--since', '2025-03-01T11:00:00Z', '--json']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal((JSON.parse(result.stdout) as { calls: number }).calls, 1);
  });

  it('draws the comparison as Mermaid and DOT with undeclared edges in red, and SVG to --out', async () => {
    const mermaid = await runCli(['policy', 'observed', '--logs', LOGS, '--policy', POLICY, '--format', 'mermaid']);
    assert.equal(mermaid.code, 0, mermaid.stderr);
    assert.match(mermaid.stdout, /UNDECLARED 1×/);
    assert.match(mermaid.stdout, /linkStyle \d+ stroke:#c62828/);
    const dot = await runCli(['policy', 'observed', '--logs', LOGS, '--format', 'dot']);
    assert.equal(dot.code, 0, dot.stderr);
    assert.match(dot.stdout, /"gateway" -> "payments" \[[^\]]*color="#c62828"/);
    const out = join(dir, 'observed.svg');
    const svg = await runCli([
      'policy',
      'observed',
      '--logs',
      LOGS,
      '--policy',
      POLICY,
      '--format',
      'svg',
      '--out',
      out,
    ]);
    assert.equal(svg.code, 0, svg.stderr);
    assert.match(readFileSync(out, 'utf8'), /<svg/);
  });

  it('exits 1 on a log path that does not exist, 2 without --logs, on an unknown format or an unreadable --since', async () => {
    assert.equal((await runCli(['policy', 'observed', '--logs', join(dir, 'missing')])).code, 1);
    assert.equal((await runCli(['policy', 'observed'])).code, 2);
    assert.equal((await runCli(['policy', 'observed', '--logs', LOGS, '--format', 'png'])).code, 2);
    assert.equal((await runCli(['policy', 'observed', '--logs', LOGS, '--since', 'yesterday'])).code, 2);
  });
});
