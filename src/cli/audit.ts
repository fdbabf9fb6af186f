import { parseArgs } from 'node:util';
import { formatTrail, readLogLines, reconstructTrail } from '../telemetry/audit-trail.ts';
import { type Command, UsageError } from './command.ts';

const HELP = `Usage: baton audit (--txn ID | --trace TRACE_ID) [--json] FILE|DIR...

Reconstructs one call chain from the JSON logs of several sidecars and the
STS: which services it went through, on whose behalf, and which rule
allowed or refused each hop, in time order. Lines join on txn and on
trace_id (written next to txn when tracing is on), so either finds the
whole chain. A directory means every file in it; 'docker compose logs'
prefixes are skipped. See docs/observability.md.

Options:
  --txn ID         the chain's txn (the baton-txn header an app saw, or a log line's txn)
  --trace ID       a W3C trace id (32 hex digits) from a trace or a log line
  --json           print the trail as JSON

Exit status: 0 when audit lines were found, 1 when none matched.`;

export const auditCommand: Command = {
  summary: 'reconstruct a call chain and its decisions from sidecar and STS logs',
  help: HELP,
  async run(args, context) {
    const { values, positionals } = parseArgs({
      args: [...args],
      options: { txn: { type: 'string' }, trace: { type: 'string' }, json: { type: 'boolean', default: false } },
      allowPositionals: true,
      strict: true,
    });
    if ((values.txn === undefined) === (values.trace === undefined)) throw new UsageError('audit expects exactly one of --txn ID or --trace TRACE_ID');
    if (values.trace !== undefined && !/^[0-9a-fA-F]{32}$/.test(values.trace)) throw new UsageError(`expected --trace to be 32 hex digits, got '${values.trace.slice(0, 64)}'`);
    if (positionals.length === 0) throw new UsageError('audit expects at least one log FILE or DIR');
    const trail = reconstructTrail(readLogLines(positionals), { ...(values.txn === undefined ? {} : { txn: values.txn }), ...(values.trace === undefined ? {} : { traceId: values.trace }) });
    context.stdout.write(values.json ? JSON.stringify(trail, null, 2) + '\n' : formatTrail(trail) + '\n');
    return trail.events.length > 0 ? 0 : 1;
  },
};
