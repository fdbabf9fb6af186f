/**
 * Drives the demo: one chain the call graph allows (gateway → orders →
 * payments) and one it refuses (gateway → payments), and reports what each
 * hop saw and which rule decided.
 */
import { request } from 'undici';
import type { HopView } from './apps.ts';
import type { Mesh } from './mesh.ts';

export const DEMO_USER = {
  sub: 'alice',
  scope: 'shop orders:write payments:charge otp',
  acr: 'urn:baton:acr:mfa',
} as const;

export interface DecisionRecord {
  readonly service: string;
  readonly direction: string;
  readonly target: string | undefined;
  readonly rule: string | undefined;
  readonly decision: string | undefined;
  readonly cause: string | undefined;
  /** Inbound over mTLS: the SPIFFE ID of the peer that connected. */
  readonly peer: string | undefined;
  /** Inbound: whether the token was bound to that peer's certificate (RFC 8705). */
  readonly bound: boolean | undefined;
}

export interface ScenarioResult {
  readonly name: string;
  readonly description: string;
  readonly status: number;
  readonly hops: readonly HopView[];
  readonly decisions: readonly DecisionRecord[];
  readonly problem: Record<string, unknown> | undefined;
  readonly txn: string | undefined;
  /** How the mesh hops ran: mtls (every hop mutual TLS, every token bound) or plaintext. */
  readonly transport: 'mtls' | 'plaintext';
  readonly passed: boolean;
}

export async function runScenarios(mesh: Mesh): Promise<ScenarioResult[]> {
  // One token per scenario: a chain's txn is derived from the token that
  // started it, so each scenario's audit trail stands on its own.
  const allowed = await postInbound(
    mesh.services.gateway.entry,
    '/checkout',
    `Bearer ${await mesh.userToken(DEMO_USER)}`,
  );
  const denied = await postInbound(
    mesh.services.gateway.entry,
    '/direct-charge',
    `Bearer ${await mesh.userToken(DEMO_USER)}`,
  );
  const allowedHops = hops(allowed.body);
  const allowedTxn = allowedHops[0]?.txn;
  const deniedHops = hops(denied.body);
  // Audit lines reach this process through the sidecars' pipes, buffered there for up to 200 ms
  // (src/telemetry/logger.ts) and later on a busy machine: wait (bounded) for every decision of the
  // allowed chain (three inbound, two outbound; one sidecar's two lines may reach us in different
  // flushes) and the gateway's refusal of the denied one, not for a fixed moment.
  const deadline = Date.now() + 10_000;
  const logged = (): boolean => {
    const trail = decisionsFor(mesh, allowedTxn);
    return (
      trail.filter((d) => d.direction === 'inbound').length >= 3 &&
      trail.filter((d) => d.direction === 'outbound').length >= 2 &&
      decisionsFor(mesh, deniedHops[0]?.txn).some((d) => d.service === 'gateway' && d.direction === 'outbound')
    );
  };
  while (!logged() && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const deniedDownstream = deniedHops[0]?.downstream;
  const problem =
    typeof deniedDownstream?.body === 'object' && deniedDownstream.body !== null
      ? (deniedDownstream.body as Record<string, unknown>)
      : undefined;
  const allowedDecisions = decisionsFor(mesh, allowedTxn);
  // mtls: each mesh hop's inbound saw its caller's certificate, and a token bound to it.
  const overMtls =
    mesh.identities === undefined ||
    (['orders', 'payments'] as const).every((service, i) => {
      const inbound = allowedDecisions.find((d) => d.service === service && d.direction === 'inbound');
      return (
        inbound?.bound === true &&
        inbound.peer === mesh.identities?.map.idOf(mesh.names[i === 0 ? 'gateway' : 'orders'])
      );
    });
  return [
    {
      name: 'allowed',
      description: 'alice → POST /checkout at gateway → orders → payments',
      status: allowed.status,
      hops: allowedHops,
      decisions: allowedDecisions,
      problem: undefined,
      txn: allowedTxn,
      transport: mesh.transport,
      passed:
        overMtls &&
        allowed.status === 200 &&
        allowedHops.length === 3 &&
        allowedHops[2]?.chain === `${mesh.names.gateway},${mesh.names.orders}` &&
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
      transport: mesh.transport,
      passed: denied.status === 403 && deniedDownstream?.status === 403 && deniedHops.length === 1,
    },
  ];
}

/** POSTs an empty JSON body to a service's inbound port, as a caller outside the mesh would. */
export async function postInbound(
  port: number,
  path: string,
  authorization: string,
): Promise<{ status: number; body: unknown }> {
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

const DATA_PLANE_PROCESS = /-(sidecar|authz)$/;

function decisionsFor(mesh: Mesh, txn: string | undefined): DecisionRecord[] {
  if (txn === undefined) return [];
  const records: DecisionRecord[] = [];
  for (const p of mesh.processes) {
    // A service's decisions come from its sidecar, or from its `baton authz` when a proxy runs its data plane.
    if (!DATA_PLANE_PROCESS.test(p.name)) continue;
    for (const line of p.logs) {
      if (line.event !== 'decision' || line.txn !== txn) continue;
      records.push({
        service: p.name.replace(DATA_PLANE_PROCESS, ''),
        direction: String(line.direction),
        target: typeof line.target === 'string' ? line.target : undefined,
        rule: typeof line.rule === 'string' ? line.rule : undefined,
        decision: typeof line.decision === 'string' ? line.decision : undefined,
        cause: typeof line.cause === 'string' ? line.cause : undefined,
        peer: typeof line.peer === 'string' ? line.peer : undefined,
        bound: typeof line.bound === 'boolean' ? line.bound : undefined,
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
        `   ${hop.service.padEnd(9)} saw subject=${hop.subject ?? '—'} (${hop.subjectType ?? '—'} of ${hop.subjectIssuer ?? '—'})  caller=${hop.caller ?? '—'}  chain=${hop.chain || '—'}  scope="${hop.scope ?? ''}"  bearer token=${hop.sawBearerToken ? 'YES' : 'no'}${hop.protocol === 'grpc' ? '  (called over gRPC)' : ''}`,
      );
    }
    if (result.decisions.length > 0) lines.push('   decisions:');
    for (const d of result.decisions) {
      lines.push(
        `     ${d.service.padEnd(9)} ${d.direction.padEnd(8)} → ${(d.target ?? '').padEnd(9)} ${String(d.decision).padEnd(6)} rule=${d.rule ?? '—'}${d.cause === undefined ? '' : ` cause=${d.cause}`}`,
      );
    }
    const meshHops = result.decisions.filter((d) => d.direction === 'inbound' && d.peer !== undefined);
    if (result.transport === 'mtls' && meshHops.length > 0)
      lines.push('   mTLS hops (peer certificate → token binding):');
    for (const d of meshHops)
      lines.push(
        `     ${d.service.padEnd(9)} ← ${d.peer ?? ''}  token ${d.bound === true ? 'bound to that certificate (cnf x5t#S256)' : 'NOT bound'}`,
      );
    if (result.problem !== undefined) {
      lines.push(
        `   refused with ${result.status}: ${String(result.problem.title)} — ${String(result.problem.detail)}`,
      );
    }
    const request = result.hops[0]?.request;
    if (result.txn !== undefined || request !== undefined)
      lines.push(`   txn ${result.txn ?? '—'}  request ${request ?? '—'}`);
    const allowedText =
      result.transport === 'mtls'
        ? "allowed end to end over mTLS, every token bound to its caller's certificate; no app held a bearer token"
        : 'allowed end to end; no app held a bearer token';
    lines.push(
      `   ${result.passed ? '✔' : '✘'} ${result.name === 'allowed' ? allowedText : "refused by the policy at the caller's sidecar, before any token exchange"}${result.passed ? '' : ' — NOT as expected'}`,
    );
  }
  lines.push('', ...legend(results.find((r) => r.name === 'allowed')));
  return lines.join('\n');
}

/** What a newcomer needs to read the report: the fields, and how scope narrowed hop by hop in this run. */
function legend(allowed: ScenarioResult | undefined): string[] {
  const out = [
    'How to read this:',
    '   caller=external  the token came straight from the identity provider (the user at the edge), not from a mesh service',
    "   chain=—          no service has called on the user's behalf yet: this is the entry hop",
    "   chain=a,b        the services the call came through, origin first, from the token's nested act claim (RFC 8693)",
    '   over gRPC        orders calls payments with @grpc/grpc-js (HTTP/2 between the sidecars); the other apps call with plain fetch',
    '   txn              one id for every request made with the same user token (header baton-txn)',
    "   request          one id for this one request at every hop (header baton-request); 'baton audit --request ID' replays it",
  ];
  const hops = allowed?.hops ?? [];
  const narrowed: string[] = [];
  for (let i = 1; i < hops.length; i++) {
    const before = new Set((hops[i - 1]?.scope ?? '').split(' ').filter((x) => x !== ''));
    const after = new Set((hops[i]?.scope ?? '').split(' ').filter((x) => x !== ''));
    const dropped = [...before].filter((x) => !after.has(x));
    narrowed.push(
      `${hops[i]?.service ?? '?'} ${dropped.length === 0 ? 'kept them all' : `lost ${dropped.join(', ')}`}`,
    );
  }
  if (narrowed.length > 0) {
    out.push(`   scope            narrows at each hop to what the rest of the chain can use: ${narrowed.join('; ')}`);
  }
  return out;
}
