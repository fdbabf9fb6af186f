import { parseArgs } from 'node:util';
import { type AuditTrail, readLogLines, reconstructTrail, type TrailEvent } from '../telemetry/audit-trail.ts';
import { REQUEST_ID } from '../sidecar/context-handles.ts';
import { type Command, UsageError } from './command.ts';

const HELP = `Usage: baton audit (--txn ID | --request ID | --trace TRACE_ID) [--json] FILE|DIR...

Reconstructs call chains from the JSON logs of several sidecars and the
STS: which services a request went through, on whose behalf, and which
rule allowed or refused each hop, in time order. A directory means every
file in it; 'docker compose logs' prefixes are skipped. See
docs/observability.md.

A txn covers every request made with one user token, so --txn prints each
of its requests on its own; --request prints one. Request ids come from the
sidecars (the baton-request header an app sees, 'request' in audit lines)
and need no trace context from the apps.

Options:
  --txn ID         a user token's txn (the baton-txn header, or a log line's txn): each of its requests
  --request ID     one request (the baton-request header, or a log line's request)
  --trace ID       a W3C trace id (32 hex digits) from a trace or a log line
  --json           print the trail as JSON

Exit status: 0 when audit lines were found, 1 when none matched.`;

export const auditCommand: Command = {
  summary: 'reconstruct a call chain and its decisions from sidecar and STS logs',
  help: HELP,
  async run(args, context) {
    const { values, positionals } = parseArgs({
      args: bindDashedIds(args),
      options: {
        txn: { type: 'string' },
        request: { type: 'string' },
        trace: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
      allowPositionals: true,
      strict: true,
    });
    const given = [values.txn, values.request, values.trace].filter((v) => v !== undefined).length;
    if (given !== 1) throw new UsageError('audit expects exactly one of --txn ID, --request ID or --trace TRACE_ID');
    if (values.trace !== undefined && !/^[0-9a-fA-F]{32}$/.test(values.trace))
      throw new UsageError(`expected --trace to be 32 hex digits, got '${values.trace.slice(0, 64)}'`);
    if (values.request !== undefined && !REQUEST_ID.test(values.request))
      throw new UsageError(`expected --request to be a 16-character request id, got '${values.request.slice(0, 64)}'`);
    if (positionals.length === 0) throw new UsageError('audit expects at least one log FILE or DIR');
    const trail = reconstructTrail(readLogLines(positionals), {
      ...(values.txn === undefined ? {} : { txn: values.txn }),
      ...(values.request === undefined ? {} : { request: values.request }),
      ...(values.trace === undefined ? {} : { traceId: values.trace }),
    });
    context.stdout.write(values.json ? JSON.stringify(trail, null, 2) + '\n' : formatTrail(trail) + '\n');
    return trail.events.length > 0 ? 0 : 1;
  },
};

const ID_SHAPES: Readonly<Record<string, RegExp>> = {
  '--request': REQUEST_ID,
  '--txn': /^[A-Za-z0-9_-]{22}$/,
};

/**
 * Request ids and txns are base64url, so one in 64 starts with '-', and
 * parseArgs refuses `--request -Xk…` as an ambiguous option value. After
 * `--request` or `--txn`, an argument with the id's exact shape is its value
 * whatever its first character (`--request=ID` joins them); anything else is
 * left for parseArgs to judge as before.
 */
function bindDashedIds(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--') return [...out, ...args.slice(i)];
    const next = args[i + 1];
    const shape = ID_SHAPES[arg];
    if (shape !== undefined && next !== undefined && next.startsWith('-') && shape.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

/** The trail as an incident responder reads it: for each request, its hops, then one line per event. */
export function formatTrail(trail: AuditTrail): string {
  const out = [`txn:   ${trail.txns.join(', ') || '—'}`, `trace: ${trail.traceIds.join(', ') || '—'}`];
  const requests = trail.requests.filter((r) => r.request !== undefined);
  if (requests.length > 1) {
    out.push(
      `${requests.length} requests under this txn (one user token); each is shown on its own. 'baton audit --request ID' shows one.`,
    );
  }
  for (const group of trail.requests) {
    const denied = group.deniedAt;
    const stop =
      denied === undefined
        ? ''
        : `  ✘ denied at ${denied.service} ${denied.direction} → ${denied.target ?? '?'} by ${denied.rule ?? '?'}${denied.cause === undefined ? '' : ` (${denied.cause})`}`;
    out.push(
      '',
      `request: ${group.request ?? '— (lines without a request id)'}`,
      `hops:    ${group.hops.join(' → ') || '—'}${stop}`,
      '',
    );
    for (const e of group.events) out.push(formatEvent(e));
  }
  return out.join('\n');
}

function formatEvent(e: TrailEvent): string {
  return [
    e.time ?? '—',
    e.service.padEnd(10),
    (e.direction ?? e.component).padEnd(8),
    `chain=${e.chain.join(',') || '(entry)'}`.padEnd(24),
    `→ ${(e.target ?? '—').padEnd(10)}`,
    `${e.method ?? '—'} ${e.path ?? ''}`.trimEnd().padEnd(22),
    (e.decision ?? '—').padEnd(10),
    `rule=${e.rule ?? '—'}`,
    ...(e.cause === undefined ? [] : [`cause=${e.cause}`]),
    ...(e.status === undefined ? [] : [`status=${e.status}`]),
  ].join('  ');
}
