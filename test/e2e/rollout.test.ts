import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { type Mesh, startMesh } from '../../src/demo/mesh.ts';
import { DEMO_USER, hops, postInbound } from '../../src/demo/scenario.ts';
import { readAuditLogs } from '../../src/policy/tooling/audit-log.ts';
import { loadPolicyFile } from '../../src/policy/language/load.ts';
import { callsFromDecisions } from '../../src/policy/tooling/observed.ts';
import { waitFor } from '../helpers/net.ts';
import { runBaton } from '../helpers/process.ts';
import { PolicyDeniedError } from '../../src/policy/language/errors.ts';
import { callGraph } from '../helpers/policy.ts';

// One edge in shadow mode (orders → payments asks for a scope alice lacks),
// one edge missing (gateway → payments), one declared edge nobody uses (billing-job → orders).
const POLICY = callGraph(
  `
gateway:
  entrypoint: true
  accepts:
    - { name: public-api, from: external, methods: [POST], paths: [/checkout, /direct-charge], scopes: shop }
orders:
  accepts:
    - { name: from-gateway, from: gateway, methods: [POST], paths: [/orders], scopes: "orders:write" }
    - { name: reconcile, from: billing-job, methods: [GET], paths: ["/orders/**"], user: none }
payments:
  accepts:
    - name: charge
      from: orders
      origins: [gateway]
      grpc: [shop.v1.Payments/Charge]
      scopes: "payments:charge and fido"
      mode: shadow
billing-job: {}
`,
  { name: 'rollout', maxDepth: 4 },
);

const dir = mkdtempSync(join(tmpdir(), 'baton-e2e-rollout-'));
const policyFile = join(dir, 'rollout.yaml');
const logDir = mkdtempSync(join(dir, 'logs-'));
writeFileSync(policyFile, POLICY);
let mesh: Mesh | undefined;

describe('rolling out a call graph: shadow mode, observed vs declared, suggest', { timeout: 90_000 }, () => {
  let checkout: { status: number; body: unknown };
  let directCharge: { status: number; body: unknown };

  before(async () => {
    // Rollout is about the policy's modes, not the transport: the plaintext mesh keeps the forged-token probe simple.
    mesh = await startMesh({ policyFile, logDir, transport: 'plaintext' });
    checkout = await postInbound(
      mesh.services.gateway.inbound,
      '/checkout',
      `Bearer ${await mesh.userToken(DEMO_USER)}`,
    );
    directCharge = await postInbound(
      mesh.services.gateway.inbound,
      '/direct-charge',
      `Bearer ${await mesh.userToken(DEMO_USER)}`,
    );
    // Audit lines are written as the sidecars decide, and reach us (and the log files) through pipes:
    // wait for the last of each kind the tests read, the direct charge's refusal at the gateway included.
    const m = mesh;
    const logged = (name: string, line: (l: Record<string, unknown>) => boolean): boolean =>
      m.process(name).logs.some(line);
    await waitFor(
      async () =>
        logged('payments-sidecar', (l) => l.event === 'decision' && l.decision === 'would_deny') &&
        logged(
          'orders-sidecar',
          (l) => l.event === 'decision' && l.direction === 'outbound' && l.decision === 'would_deny',
        ) &&
        logged('sts', (l) => l.event === 'token_decision' && l.decision === 'would_deny') &&
        logged('sts', (l) => l.event === 'token_issued' && l.decision === 'would_deny') &&
        logged('gateway-sidecar', (l) => l.event === 'decision' && l.direction === 'outbound' && l.decision === 'deny'),
      { what: 'the audit lines of both calls', timeoutMs: 10_000, intervalMs: 20 },
    );
  });
  after(async () => {
    await mesh?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lets the shadowed call through and records it as would_deny: audit line, STS line, metric', async () => {
    const m = mesh as Mesh;
    assert.equal(checkout.status, 200);
    const seen = hops(checkout.body);
    assert.deepEqual(
      seen.map((h) => [h.service, h.chain ?? '']),
      [
        ['gateway', ''],
        ['orders', 'gateway'],
        ['payments', 'gateway,orders'],
      ],
    );
    assert.equal(seen[1]?.downstream?.status, 200);

    const decisions = m.process('payments-sidecar').logs.filter((l) => l.event === 'decision');
    assert.ok(
      decisions.some(
        (l) =>
          l.direction === 'inbound' &&
          l.decision === 'would_deny' &&
          l.rule === 'payments.accepts.charge' &&
          l.cause === 'scope',
      ),
      JSON.stringify(decisions),
    );
    assert.ok(
      m
        .process('orders-sidecar')
        .logs.some((l) => l.event === 'decision' && l.direction === 'outbound' && l.decision === 'would_deny'),
    );
    // The STS follows the same mode for the same rule: it mints, and says so.
    assert.ok(
      m
        .process('sts')
        .logs.some(
          (l) =>
            l.event === 'token_issued' &&
            l.decision === 'would_deny' &&
            l.rule === 'payments.accepts.charge' &&
            l.cause === 'scope',
        ),
    );

    const metrics = await (await request(`http://127.0.0.1:${m.services.payments.admin}/metrics`)).body.text();
    assert.match(metrics, /^baton_shadow_denials_total\{target="payments",rule="payments\.accepts\.charge"\} 1$/m);
  });

  it('still enforces everything shadow mode does not cover: the missing edge and token verification', async () => {
    const m = mesh as Mesh;
    const refused = hops(directCharge.body)[0]?.downstream;
    assert.equal(refused?.status, 403);
    assert.equal((refused?.body as { code?: string }).code, PolicyDeniedError.code);
    // A shadowed rule on the edge does not make a bad token acceptable.
    const forged = await postInbound(m.services.payments.inbound, '/charges', 'Bearer not-a-token');
    assert.equal(forged.status, 401);
  });

  it('says in baton policy explain that the deciding rule is in shadow mode', async () => {
    const result = await runBaton([
      'policy',
      'explain',
      policyFile,
      '--chain',
      'gateway,orders',
      '--target',
      'payments',
      '--method',
      'POST',
      '--path',
      '/shop.v1.Payments/Charge',
      '--scope',
      'payments:charge',
    ]);
    assert.equal(result.code, 3);
    assert.match(result.stdout, /mode: {5}shadow/);
    assert.match(result.stdout, /SHADOW mode: a sidecar records this as would_deny/);
  });

  it('reports from the real log files the undeclared edge, the unused edge and the shadow-only rule', async () => {
    const result = await runBaton(['policy', 'observed', '--logs', logDir, '--policy', policyFile, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout) as {
      edges: Array<{ from: string; to: string; calls: number }>;
      policy: {
        undeclared: Array<{ from: string; to: string; underPolicy: { deny: number } }>;
        unusedEdges: Array<{ from: string; to: string }>;
        shadowOnly: Array<{ rule: string }>;
      };
    };
    assert.deepEqual(
      report.edges.map((e) => `${e.from}→${e.to} ${e.calls}`),
      ['external→gateway 2', 'gateway→orders 1', 'gateway→payments 1', 'orders→payments 1'],
    );
    assert.deepEqual(
      report.policy.undeclared.map((e) => `${e.from}→${e.to} denied ${e.underPolicy.deny}`),
      ['gateway→payments denied 1'],
    );
    assert.deepEqual(
      report.policy.unusedEdges.map((e) => `${e.from}→${e.to}`),
      ['billing-job→orders'],
    );
    assert.deepEqual(
      report.policy.shadowOnly.map((u) => u.rule),
      ['payments.accepts.charge'],
    );

    const text = await runBaton(['policy', 'observed', '--logs', logDir, '--policy', policyFile]);
    assert.doesNotMatch(text.stdout + result.stdout, /eyJ|Bearer /);
  });

  it('suggests a policy that checks clean and, loaded back, allows exactly the observed traffic', async () => {
    const suggested = join(dir, 'suggested.yaml');
    const result = await runBaton(['policy', 'suggest', '--logs', logDir, '--name', 'rollout', '--out', suggested]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    const check = await runBaton(['policy', 'check', '--strict', suggested]);
    assert.equal(check.code, 0, check.stdout + check.stderr);

    const { compiled } = loadPolicyFile(suggested);
    const calls = callsFromDecisions((await readAuditLogs([logDir])).decisions);
    assert.equal(calls.length, 5);
    for (const call of calls) {
      const decision = compiled.decide({
        chain: call.chain,
        target: call.to,
        method: call.method,
        path: call.path,
        scopes: new Set(call.scopes),
        user: call.user ?? true,
      });
      // What went through (allowed or shadow-denied) is allowed; what the running policy refused stays refused.
      assert.equal(
        decision.allowed,
        call.decision !== 'deny',
        `${call.from}→${call.to} ${call.method} ${call.path}: ${decision.reason}`,
      );
    }
    assert.match(readFileSync(suggested, 'utf8'), /scopes: payments:charge\n/);
  });
});
