import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { renderDot, renderMermaid, renderSvg } from '../policy/tooling/graph-render.ts';
import { type CliContext, type Command, UsageError } from './command.ts';
import { loadPolicyOrReport } from './policy-load.ts';

const FORMATS = ['mermaid', 'dot', 'svg'] as const;
type Format = (typeof FORMATS)[number];

const HELP = `Usage: baton policy graph FILE|DIR [--format mermaid|dot|svg] [--out FILE]

Draws the call graph: one edge per accepts rule, labelled with its methods,
paths and scopes; entrypoints with a double border; 'external' (tokens from
an identity provider) dashed; shadow-mode rules dashed. SVG is rendered
locally with Graphviz compiled to WebAssembly (no 'dot' binary needed).

Options:
  --format F   mermaid (default), dot or svg
  --out FILE   write there instead of standard output

Exit status: 0 drawn, 1 the policy is invalid or rendering failed, 2 usage error.`;

/** `baton policy graph`: the picture for a design review or a README. */
export const policyGraphCommand: Command = {
  summary: 'draw the call graph (mermaid, dot, svg)',
  help: HELP,
  async run(args: readonly string[], context: CliContext): Promise<number> {
    const { values, positionals } = parseArgs({
      args: [...args],
      options: { format: { type: 'string', default: 'mermaid' }, out: { type: 'string' } },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length !== 1) throw new UsageError(`expected one policy file, got ${positionals.length}`);
    if (!(FORMATS as readonly string[]).includes(values.format))
      throw new UsageError(`expected --format ${FORMATS.join(', ')}, got '${values.format}'`);
    const loaded = loadPolicyOrReport(positionals[0] as string, context);
    if (loaded === undefined) return 1;
    const format = values.format as Format;
    const text =
      format === 'svg'
        ? await renderSvg(loaded.policy)
        : format === 'dot'
          ? renderDot(loaded.policy)
          : renderMermaid(loaded.policy);
    if (values.out === undefined) context.stdout.write(text);
    else writeFileSync(values.out, text);
    return 0;
  },
};
