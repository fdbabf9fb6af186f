import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { isServiceName } from '../core/service-name.ts';
import { AuditInputInvalidError } from '../telemetry/errors.ts';
import { parseSince, readAuditLogs } from '../policy/tooling/audit-log.ts';
import {
  type EdgeStyle,
  renderDot,
  renderMermaid,
  renderSvg,
  type RenderOptions,
} from '../policy/tooling/graph-render.ts';
import { type CallGraphPolicy, EXTERNAL } from '../policy/language/model.ts';
import {
  buildObservedReport,
  callsFromDecisions,
  compareWithPolicy,
  comparisonRenderOptions,
  OBSERVED_STYLES,
  type ObservedReport,
  outcomeText,
} from '../policy/tooling/observed.ts';
import { suggestCallGraph, suggestionPolicy } from '../policy/tooling/suggest.ts';
import { type CliContext, type Command, UsageError } from './command.ts';
import { loadPolicyOrReport } from './policy-load.ts';

const FORMATS = ['text', 'json', 'mermaid', 'dot', 'svg'] as const;
type Format = (typeof FORMATS)[number];

const HELP = `Usage: baton policy observed --logs FILE|DIR... [--policy FILE] [--since T]
                             [--format text|json|mermaid|dot|svg] [--json] [--out FILE]

Reads the sidecars' audit logs (JSON lines; directories are walked, other
lines skipped) and prints the call graph actually seen: edges with call
counts, methods, paths and chains of origin. A call decided at both the
caller's and the callee's sidecar is counted once.

With --policy, compares it with that policy: edges used but not declared
(enforcing denies them), declared edges never used (candidates for removal),
rules that allowed nothing, and rules that only shadow-denied. Calls whose
log line carries scopes are decided again by the given policy.

Graph formats draw the policy with used edges green, never-used grey and
dashed, shadow-only orange, undeclared red; without --policy they draw the
observed graph.

Options:
  --logs P...     audit log files or directories (repeatable; more paths may follow)
  --policy FILE   the CallGraph to compare with
  --since T       only lines at or after T: ISO 8601 time or a duration (30m, 12h, 7d)
  --format F      text (default), json, mermaid, dot or svg
  --json          same as --format json
  --out FILE      write there instead of standard output

Exit status: 0 report written, 1 unreadable logs or an invalid policy, 2 usage error.`;

/** `baton policy observed`: what the mesh really does, against what the policy says. */
export const policyObservedCommand: Command = {
  summary: 'the call graph seen in audit logs, against a policy',
  help: HELP,
  async run(args: readonly string[], context: CliContext): Promise<number> {
    const { values, positionals } = parseArgs({
      args: [...args],
      allowPositionals: true,
      strict: true,
      options: {
        logs: { type: 'string', multiple: true },
        policy: { type: 'string' },
        since: { type: 'string' },
        format: { type: 'string', default: 'text' },
        json: { type: 'boolean', default: false },
        out: { type: 'string' },
      },
    });
    const logs = [...(values.logs ?? []), ...positionals];
    if (logs.length === 0) throw new UsageError('expected --logs FILE|DIR...');
    if (!(FORMATS as readonly string[]).includes(values.format))
      throw new UsageError(`expected --format ${FORMATS.join(', ')}, got '${values.format}'`);
    const format: Format = values.json ? 'json' : (values.format as Format);
    const since = sinceFlag(values.since);

    const loaded = values.policy === undefined ? undefined : loadPolicyOrReport(values.policy, context);
    if (values.policy !== undefined && loaded === undefined) return 1;
    const log = await readAuditLogs(logs, { since });
    const calls = callsFromDecisions(log.decisions);
    const comparison = loaded === undefined ? undefined : compareWithPolicy(calls, loaded.policy, loaded.compiled);
    const report = buildObservedReport(calls, comparison);
    if (calls.length === 0)
      context.stderr.write(
        `baton: no decision lines in ${log.files} file${log.files === 1 ? '' : 's'}${log.tooOld > 0 ? ` (${log.tooOld} older than --since)` : ''}\n`,
      );

    let text: string;
    if (format === 'text') text = formatObservedReport(report);
    else if (format === 'json') text = JSON.stringify(report, null, 2) + '\n';
    else {
      const drawing =
        loaded === undefined
          ? observedDrawing(report, calls)
          : { policy: loaded.policy, options: comparisonRenderOptions(comparison as NonNullable<typeof comparison>) };
      if (drawing === undefined) {
        context.stderr.write('baton: nothing observed to draw\n');
        return 1;
      }
      text =
        format === 'svg'
          ? await renderSvg(drawing.policy, drawing.options)
          : format === 'dot'
            ? renderDot(drawing.policy, drawing.options)
            : renderMermaid(drawing.policy, drawing.options);
    }
    if (values.out === undefined) context.stdout.write(text);
    else writeFileSync(values.out, text);
    return 0;
  },
};

/** `--since` as epoch milliseconds; a value it cannot read is a usage error (exit 2). */
export function sinceFlag(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  try {
    return parseSince(text, Date.now());
  } catch (error) {
    // parseSince refuses nothing else: a bad flag is a usage error (exit 2).
    if (error instanceof AuditInputInvalidError) throw new UsageError(error.message);
    throw error;
  }
}

/** Without a policy, the drawing is of the observed graph itself: the suggestion that allows all of it, annotated with counts. */
function observedDrawing(
  report: ObservedReport,
  calls: Parameters<typeof suggestCallGraph>[0],
): { policy: CallGraphPolicy; options: RenderOptions } | undefined {
  const { policy } = suggestionPolicy(
    suggestCallGraph(calls, { name: 'observed', mode: 'enforce', includeDenied: true }),
  );
  if (policy === undefined) return undefined;
  const ruleStyles = new Map<string, EdgeStyle>();
  for (const edge of report.edges) {
    const rules =
      (isServiceName(edge.to)
        ? policy.spec.services.get(edge.to)?.accepts.filter((rule) => rule.from === edge.from)
        : undefined) ?? [];
    const denied = edge.outcomes.deny + edge.outcomes.would_deny;
    const style = denied > 0 ? OBSERVED_STYLES.undeclared : OBSERVED_STYLES.used;
    const annotation = `${edge.calls}×${denied > 0 ? ` (denied ${edge.outcomes.deny}, would deny ${edge.outcomes.would_deny})` : ''}`;
    for (const rule of rules) ruleStyles.set(rule.id, { ...style, annotation });
  }
  return { policy, options: { ruleStyles } };
}

/** The report for people: one block per edge, then the comparison with the policy. */
export function formatObservedReport(report: ObservedReport): string {
  const lines: string[] = [];
  const span = report.firstSeen === undefined ? '' : ` between ${report.firstSeen} and ${report.lastSeen}`;
  lines.push(
    `observed ${report.calls} call${report.calls === 1 ? '' : 's'} on ${report.edges.length} edge${report.edges.length === 1 ? '' : 's'}${span}`,
  );
  for (const edge of report.edges) {
    lines.push('', `${edge.from} → ${edge.to}  ${edge.calls}× (${outcomeText(edge.outcomes)})`);
    for (const route of edge.routes) lines.push(`    ${route.method.padEnd(7)} ${route.path}  ${route.calls}×`);
    lines.push(
      `    chains: ${edge.chains.map((c) => `${c.chain.length === 0 ? EXTERNAL : c.chain.join('→')} ${c.calls}×`).join(', ')}`,
    );
  }
  const policy = report.policy;
  if (policy !== undefined) {
    lines.push('', `against policy ${policy.name} (${policy.digest.slice(0, 12)}):`);
    lines.push('', 'used but not declared (enforcing denies these):');
    if (policy.undeclared.length === 0) lines.push('    none');
    for (const edge of policy.undeclared) {
      lines.push(
        `    ${edge.from} → ${edge.to}  ${edge.calls}× (${outcomeText(edge.underPolicy)})  ${edge.routes.map((r) => `${r.method} ${r.path}`).join(', ')}`,
      );
    }
    lines.push('', 'declared but never used (candidates for removal):');
    if (policy.unusedEdges.length === 0) lines.push('    none');
    for (const edge of policy.unusedEdges) lines.push(`    ${edge.from} → ${edge.to}  (${edge.rules.join(', ')})`);
    if (policy.unusedRules.length > 0) {
      lines.push('', 'rules on used edges that allowed nothing:');
      for (const use of policy.unusedRules)
        lines.push(`    ${use.rule}  ${use.from} → ${use.to}  (${outcomeText(use.outcomes)})`);
    }
    lines.push('', 'rules that only shadow-denied (enforcing them breaks all their traffic):');
    if (policy.shadowOnly.length === 0) lines.push('    none');
    for (const use of policy.shadowOnly)
      lines.push(`    ${use.rule}  ${use.from} → ${use.to}  would_deny ${use.outcomes.would_deny}×`);
  }
  return lines.join('\n') + '\n';
}
