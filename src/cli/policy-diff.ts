import { parseArgs } from 'node:util';
import { diffPolicies, formatPolicyDiff } from '../policy/tooling/diff.ts';
import { type CliContext, type Command, UsageError } from './command.ts';
import { loadPolicyOrReport } from './policy-load.ts';

const HELP = `Usage: baton policy diff OLD NEW [--json]

Shows what a policy change does: services and entrypoints added or removed,
maxDepth and mode changes, edges added or removed (with their rules), and
rules added, removed or changed on edges present in both (which fields:
methods, paths, scopes, acr, user, origins, mode, allowCycles).

  + edge gateway → orders (orders.accepts[0]) GET,POST /orders

Options:
  --json   structured output instead of text

Exit status (like diff(1)): 0 no difference, 1 different, 2 usage error or
an invalid policy.`;

/** `baton policy diff`: what a reviewer of a policy pull request needs to see. */
export const policyDiffCommand: Command = {
  summary: 'edges and rules added, removed or changed between two policies',
  help: HELP,
  async run(args: readonly string[], context: CliContext): Promise<number> {
    const { values, positionals } = parseArgs({ args: [...args], options: { json: { type: 'boolean', default: false } }, allowPositionals: true, strict: true });
    if (positionals.length !== 2) throw new UsageError(`expected two policy files (OLD NEW), got ${positionals.length}`);
    const before = loadPolicyOrReport(positionals[0] as string, context);
    const after = loadPolicyOrReport(positionals[1] as string, context);
    if (before === undefined || after === undefined) return 2;
    const diff = diffPolicies(before.policy, after.policy);
    context.stdout.write(values.json ? JSON.stringify(diff, null, 2) + '\n' : formatPolicyDiff(diff));
    return diff.equal ? 0 : 1;
  },
};
