import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { readAuditLogs } from '../policy/tooling/audit-log.ts';
import type { PolicyMode } from '../policy/language/model.ts';
import { callsFromDecisions } from '../policy/tooling/observed.ts';
import { formatSuggestion, suggestCallGraph } from '../policy/tooling/suggest.ts';
import { type CliContext, type Command, UsageError } from './command.ts';
import { sinceFlag } from './policy-observed.ts';

const HELP = `Usage: baton policy suggest --logs FILE|DIR... [--since T] [--name NAME]
                            [--mode shadow|enforce] [--generalize] [--include-denied] [--out FILE]

Writes a CallGraph that allows exactly the traffic in the sidecars' audit
logs, as a starting point for a mesh adopting baton. Least privilege: only
the edges, methods and paths seen (one rule per way an edge was used),
the scopes every call of a rule carried (an 'and' expression), the origins
seen, 'user: none' or 'optional' where service identities called, the
entrypoints that received external tokens, maxDepth the longest chain.
Calls denied in enforce mode are left out unless --include-denied.

Options:
  --logs P...        audit log files or directories (repeatable; more paths may follow)
  --since T          only lines at or after T: ISO 8601 time or a duration (30m, 12h, 7d)
  --name NAME        metadata.name (default: observed)
  --mode M           spec.mode of the suggestion: shadow (default) or enforce
  --generalize       numeric, UUID and long hex path segments become '*'
  --include-denied   also allow calls the sidecars denied
  --out FILE         write there instead of standard output

What cannot be expressed (a path no pattern can name, a chain hop whose own
calls are not in the logs) is printed as a warning and left denied.

Exit status: 0 written, 1 nothing observed or unreadable logs, 2 usage error.`;

/** `baton policy suggest`: from observed traffic to a first CallGraph. */
export const policySuggestCommand: Command = {
  summary: 'write a CallGraph allowing exactly the traffic in audit logs',
  help: HELP,
  async run(args: readonly string[], context: CliContext): Promise<number> {
    const { values, positionals } = parseArgs({
      args: [...args],
      allowPositionals: true,
      strict: true,
      options: {
        logs: { type: 'string', multiple: true },
        since: { type: 'string' },
        name: { type: 'string', default: 'observed' },
        mode: { type: 'string', default: 'shadow' },
        generalize: { type: 'boolean', default: false },
        'include-denied': { type: 'boolean', default: false },
        out: { type: 'string' },
      },
    });
    const logs = [...(values.logs ?? []), ...positionals];
    if (logs.length === 0) throw new UsageError('expected --logs FILE|DIR...');
    if (values.mode !== 'shadow' && values.mode !== 'enforce')
      throw new UsageError(`expected --mode shadow or enforce, got '${values.mode}'`);
    const since = sinceFlag(values.since);

    const log = await readAuditLogs(logs, { since });
    const calls = callsFromDecisions(log.decisions);
    const suggestion = suggestCallGraph(calls, {
      name: values.name,
      mode: values.mode as PolicyMode,
      generalize: values.generalize,
      includeDenied: values['include-denied'],
    });
    if (suggestion.calls.length === 0) {
      context.stderr.write(
        `baton: no allowed or shadow-denied calls in ${log.files} file${log.files === 1 ? '' : 's'}; nothing to suggest\n`,
      );
      return 1;
    }
    for (const warning of suggestion.warnings) context.stderr.write(`baton: warning: ${warning}\n`);
    const text = formatSuggestion(suggestion);
    if (values.out === undefined) context.stdout.write(text);
    else writeFileSync(values.out, text);
    return 0;
  },
};
