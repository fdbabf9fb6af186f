import { parseArgs } from 'node:util';
import { diffPolicies, type PolicyDiff, type RuleSummary } from '../policy/tooling/diff.ts';
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
    const { values, positionals } = parseArgs({
      args: [...args],
      options: { json: { type: 'boolean', default: false } },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length !== 2)
      throw new UsageError(`expected two policy files (OLD NEW), got ${positionals.length}`);
    const before = loadPolicyOrReport(positionals[0] as string, context);
    const after = loadPolicyOrReport(positionals[1] as string, context);
    if (before === undefined || after === undefined) return 2;
    const diff = diffPolicies(before.policy, after.policy);
    context.stdout.write(values.json ? JSON.stringify(diff, null, 2) + '\n' : formatPolicyDiff(diff));
    return diff.equal ? 0 : 1;
  },
};

/** Readable text for a reviewer; one line per change, `+` added, `-` removed, `~` changed. */
export function formatPolicyDiff(diff: PolicyDiff): string {
  if (diff.equal) return 'no differences\n';
  const lines: string[] = [];
  if (diff.name !== undefined) lines.push(`~ metadata.name ${diff.name.before} → ${diff.name.after}`);
  if (diff.maxDepth !== undefined) lines.push(`~ maxDepth ${diff.maxDepth.before} → ${diff.maxDepth.after}`);
  if (diff.mode !== undefined) lines.push(`~ mode ${diff.mode.before} → ${diff.mode.after}`);
  for (const name of diff.services.added) lines.push(`+ service ${name}`);
  for (const name of diff.services.removed) lines.push(`- service ${name}`);
  for (const change of diff.serviceModes)
    lines.push(`~ service ${change.service} mode ${change.before} → ${change.after}`);
  for (const name of diff.entrypoints.added) lines.push(`+ entrypoint ${name}`);
  for (const name of diff.entrypoints.removed) lines.push(`- entrypoint ${name}`);
  for (const edge of diff.edges.added)
    for (const rule of edge.rules) lines.push(`+ edge ${rule.from} → ${rule.to} (${rule.id}) ${routeOf(rule)}`);
  for (const edge of diff.edges.removed)
    for (const rule of edge.rules) lines.push(`- edge ${rule.from} → ${rule.to} (${rule.id}) ${routeOf(rule)}`);
  for (const rule of diff.rules.added) lines.push(`+ rule ${rule.id} (${rule.from} → ${rule.to}) ${routeOf(rule)}`);
  for (const rule of diff.rules.removed) lines.push(`- rule ${rule.id} (${rule.from} → ${rule.to}) ${routeOf(rule)}`);
  for (const rule of diff.rules.changed) {
    const renamed = rule.previousId === rule.id ? '' : ` (was ${rule.previousId})`;
    const fields = rule.changes.map((c) => `${c.field} ${show(c.before)} → ${show(c.after)}`).join('; ');
    lines.push(`~ rule ${rule.id}${renamed} (${rule.from} → ${rule.to}): ${fields}`);
  }
  return lines.join('\n') + '\n';
}

function routeOf(rule: RuleSummary): string {
  const route = `${rule.methods?.join(',') ?? 'ANY'} ${rule.paths?.join(' ') ?? '/**'}`;
  return rule.scopes === undefined ? route : `${route} scopes: ${rule.scopes}`;
}

function show(value: unknown): string {
  if (value === undefined) return '(unset)';
  if (Array.isArray(value)) return value.join(',');
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}
