/**
 * Drives the demo: one chain the call graph allows (gateway → orders →
 * payments) and one it refuses (gateway → payments), and reports what each
 * hop saw and which rule decided.
 */
import { request } from 'undici';
import type { HopView } from './apps.ts';
import type { Mesh } from './mesh.ts';

export const DEMO_USER = { sub: 'alice', scope: 'shop orders:write payments:charge otp', acr: 'urn:baton:acr:mfa' } as const;

export interface DecisionRecord {
  readonly service: string;
  readonly direction: string;
  readonly target: string | undefined;
  readonly rule: string | undefined;
  readonly decision: string | undefined;
  readonly cause: string | undefined;
}

export interface ScenarioResult {
  readonly name: string;
  readonly description: string;
  readonly status: number;
  readonly hops: readonly HopView[];
  readonly decisions: readonly DecisionRecord[];
  readonly problem: Record<string, unknown> | undefined;
  readonly txn: string | undefined;
  readonly passed: boolean;
}

export async function runScenarios(mesh: Mesh): Promise<ScenarioResult[]> {
  // One token per scenario: a chain's txn is derived from the token that
  // started it, so each scenario's audit trail stands on its own.
  const allowed = await postInbound(mesh.services.gateway.inbound, '/checkout', `Bearer ${await mesh.userToken(DEMO_USER)}`);
  const denied = await postInbound(mesh.services.gateway.inbound, '/direct-charge', `Bearer ${await mesh.userToken(DEMO_USER)}`);
  // Audit lines are written as the sidecars decide; give the pipes a moment.
  await new Promise((resolve) => setTimeout(resolve, 300));

  const allowedHops = hops(allowed.body);
  const allowedTxn = allowedHops[0]?.txn;
  const deniedHops = hops(denied.body);
  const deniedDownstream = deniedHops[0]?.downstream;
  const problem = typeof deniedDownstream?.body === 'object' && deniedDownstream.body !== null ? (deniedDownstream.body as Record<string, unknown>) : undefined;
  return [
    {
      name: 'allowed',
      description: 'alice → POST /checkout at gateway → orders → payments',
      status: allowed.status,
      hops: allowedHops,
      decisions: decisionsFor(mesh, allowedTxn),
      problem: undefined,
      txn: allowedTxn,
      passed:
        allowed.status === 200 &&
        allowedHops.length === 3 &&
        allowedHops[2]?.chain === 'gateway,orders' &&
        allowedHops.every((hop) => !hop.sawBearerToken && hop.subject === DEMO_USER.sub),
    },
    {
      name: 'denied',
      description: 'alice → POST /direct-charge at gateway → payments (not in the call graph)',
      status: deniedDownstream?.status ?? denied.status,
      hops: deniedHops,
      decisions: decisionsFor(mesh, deniedHops[0]?.txn),
      problem,
      txn: deniedHops[0]?.txn,
      passed: denied.status === 200 && deniedDownstream?.status === 403 && deniedHops.length === 1,
    },
  ];
}

/** POSTs an empty JSON body to a service's inbound port, as a caller outside the mesh would. */
export async function postInbound(port: number, path: string, authorization: string): Promise<{ status: number; body: unknown }> {
  const response = await request(`http://127.0.0.1:${port}${path}`, {
    method: 'POST',
    headers: { authorization, 'content-type': 'application/json' },
    body: '{}',
  });
  const text = await response.body.text();
  try {
    return { status: response.statusCode, body: JSON.parse(text) as unknown };
  } catch {
    return { status: response.statusCode, body: text };
  }
}

/** Flattens the nested answers (gateway's view holds orders', which holds payments'). */
export function hops(body: unknown): HopView[] {
  const out: HopView[] = [];
  let node: unknown = body;
  while (typeof node === 'object' && node !== null && 'service' in node) {
    const view = node as HopView;
    out.push(view);
    node = view.downstream?.body;
  }
  return out;
}

function decisionsFor(mesh: Mesh, txn: string | undefined): DecisionRecord[] {
  if (txn === undefined) return [];
  const records: DecisionRecord[] = [];
  for (const p of mesh.processes) {
    if (!p.name.endsWith('-sidecar')) continue;
    for (const line of p.logs) {
      if (line.event !== 'decision' || line.txn !== txn) continue;
      records.push({
        service: p.name.replace(/-sidecar$/, ''),
        direction: String(line.direction),
        target: typeof line.target === 'string' ? line.target : undefined,
        rule: typeof line.rule === 'string' ? line.rule : undefined,
        decision: typeof line.decision === 'string' ? line.decision : undefined,
        cause: typeof line.cause === 'string' ? line.cause : undefined,
      });
    }
  }
  return records;
}

export function formatScenarios(results: readonly ScenarioResult[]): string {
  const lines: string[] = [];
  for (const [index, result] of results.entries()) {
    lines.push('', `${index + 1}. ${result.description}`);
    for (const hop of result.hops) {
      lines.push(
        `   ${hop.service.padEnd(9)} saw subject=${hop.subject ?? '—'} (${hop.subjectType ?? '—'} of ${hop.subjectIssuer ?? '—'})  caller=${hop.caller ?? '—'}  chain=${hop.chain || '—'}  scope="${hop.scope ?? ''}"  bearer token=${hop.sawBearerToken ? 'YES' : 'no'}`,
      );
    }
    if (result.decisions.length > 0) lines.push('   decisions:');
    for (const d of result.decisions) {
      lines.push(`     ${d.service.padEnd(9)} ${d.direction.padEnd(8)} → ${(d.target ?? '').padEnd(9)} ${String(d.decision).padEnd(6)} rule=${d.rule ?? '—'}${d.cause === undefined ? '' : ` cause=${d.cause}`}`);
    }
    if (result.problem !== undefined) {
      lines.push(`   refused with ${result.status}: ${String(result.problem.title)} — ${String(result.problem.detail)}`);
    }
    if (result.txn !== undefined) lines.push(`   txn ${result.txn}`);
    lines.push(`   ${result.passed ? '✔' : '✘'} ${result.name === 'allowed' ? 'allowed end to end; no app held a bearer token' : 'refused by the policy at the caller\'s sidecar, before any token exchange'}${result.passed ? '' : ' — NOT as expected'}`);
  }
  return lines.join('\n');
}
