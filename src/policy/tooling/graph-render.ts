/**
 * Draws a call-graph policy: one edge per accepts rule, labelled with its
 * methods, paths and (briefly) scopes; entrypoints with a double border;
 * `external` (tokens straight from an identity provider) as its own dashed
 * node; shadow-mode rules dashed. Pure functions from policy to text, so a
 * later "observed vs declared" view can reuse them by passing per-rule
 * styles and extra edges rather than forking the renderer.
 */
import { isServiceName } from '../../core/service-name.ts';
import { type AcceptRule, type CallGraphPolicy, EXTERNAL } from '../language/model.ts';
import { GraphvizUnavailableError } from './errors.ts';

export interface EdgeStyle {
  /** A CSS/Graphviz colour name or #rrggbb. */
  readonly color?: string;
  readonly dashed?: boolean;
  readonly bold?: boolean;
  /** An extra label line, e.g. "observed 1 204×". */
  readonly annotation?: string;
}

/** An edge that is not a rule of the policy, e.g. a call observed but never declared. */
export interface ExtraEdge {
  readonly from: string;
  readonly to: string;
  readonly label?: string;
  readonly style?: EdgeStyle;
}

export interface RenderOptions {
  /** Styles keyed by rule id (`orders.accepts.from-gateway`), merged over the defaults. */
  readonly ruleStyles?: ReadonlyMap<string, EdgeStyle>;
  readonly extraEdges?: readonly ExtraEdge[];
  /** Longest scope expression shown before it is cut with an ellipsis. Default 40. */
  readonly maxScopeChars?: number;
}

export interface GraphNode {
  readonly name: string;
  readonly kind: 'service' | 'entrypoint' | 'external';
}

export interface GraphEdge {
  readonly from: string;
  readonly to: string;
  /** The rule drawn, absent for extra edges and the implicit entrypoint edge. */
  readonly rule: string | undefined;
  readonly lines: readonly string[];
  readonly style: EdgeStyle;
}

export interface CallGraphDrawing {
  readonly title: string;
  readonly nodes: readonly GraphNode[];
  readonly edges: readonly GraphEdge[];
}

/** The drawing every format renders: nodes sorted by name, edges in policy order. */
export function drawCallGraph(policy: CallGraphPolicy, options: RenderOptions = {}): CallGraphDrawing {
  const maxScopeChars = options.maxScopeChars ?? 40;
  const names = new Set<string>(policy.spec.services.keys());
  const edges: GraphEdge[] = [];
  let usesExternal = false;
  for (const service of [...policy.spec.services.values()].sort((a, b) => compare(a.name, b.name))) {
    const externalRules = service.accepts.filter((rule) => rule.from === EXTERNAL);
    if (service.entrypoint && externalRules.length === 0) {
      // DESIGN.md: an entrypoint without `from: external` rules accepts IdP tokens on every route.
      usesExternal = true;
      edges.push({ from: EXTERNAL, to: service.name, rule: undefined, lines: ['any route'], style: { dashed: false } });
    }
    for (const rule of service.accepts) {
      if (rule.from === EXTERNAL) usesExternal = true;
      const defaults: EdgeStyle = { dashed: rule.mode === 'shadow' };
      const extra = options.ruleStyles?.get(rule.id);
      const style = { ...defaults, ...extra };
      const lines = ruleLines(rule, maxScopeChars);
      edges.push({
        from: rule.from,
        to: service.name,
        rule: rule.id,
        lines: extra?.annotation === undefined ? lines : [...lines, extra.annotation],
        style,
      });
    }
  }
  for (const extra of options.extraEdges ?? []) {
    names.add(extra.from);
    names.add(extra.to);
    if (extra.from === EXTERNAL || extra.to === EXTERNAL) usesExternal = true;
    const lines = [extra.label, extra.style?.annotation].filter((line): line is string => line !== undefined);
    edges.push({ from: extra.from, to: extra.to, rule: undefined, lines, style: extra.style ?? {} });
  }
  names.delete(EXTERNAL);
  const nodes: GraphNode[] = [...names].sort(compare).map((name) => ({
    name,
    kind: isServiceName(name) && policy.spec.services.get(name)?.entrypoint === true ? 'entrypoint' : 'service',
  }));
  if (usesExternal) nodes.unshift({ name: EXTERNAL, kind: 'external' });
  return { title: policy.metadata.name, nodes, edges };
}

function ruleLines(rule: AcceptRule, maxScopeChars: number): string[] {
  const lines = [`${rule.methods?.join(',') ?? 'ANY'} ${rule.paths?.join(' ') ?? '/**'}`];
  if (rule.scopes !== undefined) lines.push(`scopes: ${clip(rule.scopes, maxScopeChars)}`);
  const notes: string[] = [];
  if (rule.origins !== undefined) notes.push(`origins ${rule.origins.join(',')}`);
  if (rule.acr !== undefined) notes.push(`acr ${rule.acr.join(',')}`);
  if (rule.issuers !== undefined) notes.push(`issuers ${rule.issuers.join(',')}`);
  if (rule.user !== 'required') notes.push(`user ${rule.user}`);
  if (rule.allowCycles) notes.push('cycles');
  if (rule.mode === 'shadow') notes.push('shadow');
  if (notes.length > 0) lines.push(notes.join(' · '));
  return lines;
}

export function renderMermaid(policy: CallGraphPolicy, options: RenderOptions = {}): string {
  const drawing = drawCallGraph(policy, options);
  const ids = new Map(
    drawing.nodes.map((node, index) => [node.name, node.kind === 'external' ? 'external' : `s${index}`]),
  );
  const out = [`---\ntitle: ${mermaidText(drawing.title)}\n---`, 'flowchart LR'];
  for (const node of drawing.nodes) {
    const id = ids.get(node.name) as string;
    const label = `"${mermaidText(node.name)}"`;
    out.push(
      node.kind === 'external'
        ? `  ${id}((${label})):::external`
        : node.kind === 'entrypoint'
          ? `  ${id}([${label}]):::entrypoint`
          : `  ${id}[${label}]`,
    );
  }
  const linkStyles: string[] = [];
  drawing.edges.forEach((edge, index) => {
    const arrow = edge.style.dashed === true ? '-.->' : edge.style.bold === true ? '==>' : '-->';
    const label = edge.lines.length === 0 ? '' : `|"${edge.lines.map(mermaidText).join('<br/>')}"|`;
    out.push(`  ${ids.get(edge.from)} ${arrow}${label} ${ids.get(edge.to)}`);
    if (edge.style.color !== undefined) linkStyles.push(`  linkStyle ${index} stroke:${cssColor(edge.style.color)}`);
  });
  out.push(...linkStyles);
  out.push('  classDef entrypoint stroke-width:3px', '  classDef external stroke-dasharray:5 5');
  return out.join('\n') + '\n';
}

export function renderDot(policy: CallGraphPolicy, options: RenderOptions = {}): string {
  const drawing = drawCallGraph(policy, options);
  const out = [
    `digraph ${dotString(drawing.title)} {`,
    '  rankdir=LR;',
    `  label=${dotString(drawing.title)}; labelloc=t;`,
    '  node [shape=box, style=rounded, fontname="Helvetica"];',
    '  edge [fontname="Helvetica", fontsize=10];',
  ];
  for (const node of drawing.nodes) {
    const attributes =
      node.kind === 'external'
        ? 'shape=ellipse, style=dashed'
        : node.kind === 'entrypoint'
          ? 'peripheries=2, style="rounded,bold"'
          : '';
    out.push(`  ${dotString(node.name)}${attributes === '' ? '' : ` [${attributes}]`};`);
  }
  for (const edge of drawing.edges) {
    const attributes = [`label=${dotString(edge.lines.join('\n'))}`];
    const styles = [edge.style.dashed === true ? 'dashed' : '', edge.style.bold === true ? 'bold' : ''].filter(
      (s) => s !== '',
    );
    if (styles.length > 0) attributes.push(`style="${styles.join(',')}"`);
    if (edge.style.color !== undefined)
      attributes.push(`color=${dotString(edge.style.color)}`, `fontcolor=${dotString(edge.style.color)}`);
    out.push(`  ${dotString(edge.from)} -> ${dotString(edge.to)} [${attributes.join(', ')}];`);
  }
  out.push('}');
  return out.join('\n') + '\n';
}

/** SVG via Graphviz compiled to WebAssembly: no `dot` binary needed on the machine. */
export async function renderSvg(policy: CallGraphPolicy, options: RenderOptions = {}): Promise<string> {
  let graphviz: { dot(source: string, format?: 'svg'): string };
  try {
    const { Graphviz } = await import('@hpcc-js/wasm-graphviz');
    graphviz = await Graphviz.load();
  } catch (error) {
    throw new GraphvizUnavailableError(
      `expected @hpcc-js/wasm-graphviz to load, got ${error instanceof Error ? error.message : String(error)}; run npm install`,
      { cause: error },
    );
  }
  return graphviz.dot(renderDot(policy, options), 'svg');
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(1, max - 1))}…`;
}

/** Mermaid labels are HTML: entity-escape what would close the quote or open a tag. */
function mermaidText(text: string): string {
  return text.replace(/&/g, '#amp;').replace(/"/g, '#quot;').replace(/</g, '#lt;').replace(/>/g, '#gt;');
}

function cssColor(color: string): string {
  return /^(#[0-9a-fA-F]{3,8}|[a-zA-Z]+)$/.test(color) ? color : 'red';
}

function dotString(text: string): string {
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}
