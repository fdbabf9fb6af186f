import { closest } from '../config/closest.ts';
import { type CliContext, type Command, UsageError } from './command.ts';

/** `baton policy <subcommand>`: the platform team's tools. Each subcommand is its own file. */
const SUBCOMMANDS: Readonly<Record<string, { summary: string; load: () => Promise<Command> }>> = {
  check: {
    summary: 'validate policy files; errors as file:line:col',
    load: async () => (await import('./policy-check.ts')).policyCheckCommand,
  },
  explain: {
    summary: 'would this chain be allowed? the decision and the rule',
    load: async () => (await import('./policy-explain.ts')).policyExplainCommand,
  },
  graph: {
    summary: 'draw the call graph (mermaid, dot, svg)',
    load: async () => (await import('./policy-graph.ts')).policyGraphCommand,
  },
  diff: {
    summary: 'edges and rules added, removed or changed between two policies',
    load: async () => (await import('./policy-diff.ts')).policyDiffCommand,
  },
  observed: {
    summary: 'the call graph seen in audit logs, against a policy',
    load: async () => (await import('./policy-observed.ts')).policyObservedCommand,
  },
  suggest: {
    summary: 'write a CallGraph allowing exactly the traffic in audit logs',
    load: async () => (await import('./policy-suggest.ts')).policySuggestCommand,
  },
};

const HELP = `Usage: baton policy <subcommand> [options]

Subcommands:
${Object.entries(SUBCOMMANDS)
  .map(([name, { summary }]) => `  ${name.padEnd(10)}${summary}`)
  .join('\n')}

Run 'baton policy <subcommand> --help' for its options.`;

export const policyCommand: Command = {
  summary: 'validate, explain, draw and diff call-graph policies',
  help: HELP,
  subcommands: Object.keys(SUBCOMMANDS),
  helpFor: async (name) =>
    Object.hasOwn(SUBCOMMANDS, name)
      ? (await (SUBCOMMANDS[name] as { load: () => Promise<Command> }).load()).help
      : HELP,
  async run(args: readonly string[], context: CliContext): Promise<number> {
    const [name, ...rest] = args;
    if (name === undefined || name === '--help' || name === '-h') {
      (name === undefined ? context.stderr : context.stdout).write(HELP + '\n');
      return name === undefined ? 2 : 0;
    }
    const entry = SUBCOMMANDS[name];
    if (entry === undefined) {
      const near = closest(name, Object.keys(SUBCOMMANDS));
      throw new UsageError(
        `unknown policy subcommand '${name}'${near === undefined ? '' : `; did you mean 'baton policy ${near}'?`}`,
      );
    }
    const command = await entry.load();
    if (rest.includes('--help') || rest.includes('-h')) {
      context.stdout.write(command.help + '\n');
      return 0;
    }
    return await command.run(rest, context);
  },
};
