import { parseArgs } from 'node:util';
import type { Decision } from '../policy/language/decision.ts';
import type { CallGraphPolicy, SourceLocation } from '../policy/language/model.ts';
import type { RuleId } from '../policy/language/model.ts';
import { ruleIdService } from '../policy/language/rule-id.ts';
import { type CliContext, type Command, UsageError } from './command.ts';
import { loadPolicyOrReport } from './policy-load.ts';

const HELP = `Usage: baton policy explain FILE --target SERVICE [--chain a,b,...|--external]
                            [--method M] [--path P] [--scope "s1 s2"] [--acr X] [--issuer URL]
                            [--no-user] [--json]

Would this call be allowed? Prints the decision, the rule that took it,
the reason and the rule's mode.

Options:
  --chain a,b,...  the callers, origin first, immediate caller last
                   (an empty --chain "" is a token straight from an external IdP)
  --external       same as --chain ""
  --target S       the service being called (required)
  --method M       the request method (omit to decide the edge only, as the STS does)
  --path P         the raw request path (omit to decide the edge only)
  --scope "a b"    the token's scopes, space-separated; repeatable
  --acr X          the token's acr
  --issuer URL     the issuer that authenticated the subject (matched by a rule's issuers)
  --no-user        a service-identity call (no user subject)
  --json           print the decision as JSON

Exit status: 0 allowed, 3 denied (also in shadow mode), 1 the policy is invalid,
2 usage error.`;

export const EXIT_DENIED = 3;

/** `baton policy explain`: ask the compiled policy exactly what a sidecar would. */
export const policyExplainCommand: Command = {
  summary: 'would this chain be allowed? the decision and the rule',
  help: HELP,
  async run(args: readonly string[], context: CliContext): Promise<number> {
    const { values, positionals } = parseArgs({
      args: [...args],
      allowPositionals: true,
      strict: true,
      options: {
        chain: { type: 'string' },
        external: { type: 'boolean', default: false },
        target: { type: 'string' },
        method: { type: 'string' },
        path: { type: 'string' },
        scope: { type: 'string', multiple: true },
        acr: { type: 'string' },
        issuer: { type: 'string' },
        'no-user': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
      },
    });
    if (positionals.length !== 1) throw new UsageError(`expected exactly one policy file, got ${positionals.length}`);
    if (values.target === undefined || values.target === '') throw new UsageError('expected --target SERVICE');
    if (values.chain === undefined && !values.external)
      throw new UsageError("expected --chain a,b,... or --external (same as --chain '')");
    if (values.chain !== undefined && values.chain !== '' && values.external)
      throw new UsageError('--external means an empty chain; do not combine it with --chain');
    const chain = values.external || values.chain === '' ? [] : (values.chain ?? '').split(',').map((s) => s.trim());
    if (chain.some((s) => s === ''))
      throw new UsageError(`expected --chain to name services separated by commas, got '${values.chain}'`);

    const loaded = loadPolicyOrReport(positionals[0] as string, context);
    if (loaded === undefined) return 1;
    const scopes = new Set((values.scope ?? []).flatMap((s) => s.split(/\s+/)).filter((s) => s !== ''));
    const decision = loaded.compiled.decide({
      chain,
      target: values.target,
      method: values.method,
      path: values.path,
      scopes,
      acr: values.acr,
      user: !values['no-user'],
      subjectIssuer: values.issuer,
    });
    if (values.json) context.stdout.write(JSON.stringify(decision) + '\n');
    else context.stdout.write(describeDecision(decision, ruleLocation(loaded.policy, decision.rule)));
    return decision.allowed ? 0 : EXIT_DENIED;
  },
};

function describeDecision(decision: Decision, location: SourceLocation | undefined): string {
  const lines = [
    `decision: ${decision.allowed ? 'allow' : `deny (cause: ${decision.cause})`}`,
    `rule:     ${decision.rule}${location === undefined ? '' : `  (${location.file}:${location.line}:${location.column})`}`,
    `reason:   ${decision.reason}`,
    `mode:     ${decision.mode}`,
  ];
  if (!decision.allowed && decision.acrValues !== undefined)
    lines.push(`acr_values: ${decision.acrValues.join(' ')}  (step-up, RFC 9470)`);
  if (decision.mode === 'shadow') {
    lines.push(
      decision.allowed
        ? 'note:     the deciding rule is in shadow mode'
        : 'note:     the deciding rule is in SHADOW mode: a sidecar records this as would_deny and lets the call through',
    );
  }
  return lines.join('\n') + '\n';
}

function ruleLocation(policy: CallGraphPolicy, rule: RuleId): SourceLocation | undefined {
  const service = ruleIdService(rule);
  const entry = service === undefined ? undefined : policy.spec.services.get(service);
  if (entry === undefined) return undefined;
  return entry.accepts.find((accept) => accept.id === rule)?.location ?? entry.location;
}
