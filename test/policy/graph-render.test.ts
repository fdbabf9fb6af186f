import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { renderDot, renderMermaid, renderSvg } from '../../src/policy/tooling/graph-render.ts';
import type { CallGraphPolicy } from '../../src/policy/language/model.ts';
import { parsePolicy } from '../../src/policy/language/parse.ts';

const FIXTURE = readFileSync(new URL('../fixtures/policy-server/callgraph.yaml', import.meta.url), 'utf8');

function policyOf(text: string): CallGraphPolicy {
  const { policy, problems } = parsePolicy(text, 'callgraph.yaml');
  assert.ok(policy, JSON.stringify(problems));
  return policy;
}

const shop = policyOf(FIXTURE);

describe('call graph rendering', () => {
  it('draws one DOT edge per rule, labelled with methods, paths and scopes', () => {
    const dot = renderDot(shop);
    assert.match(
      dot,
      /"gateway" -> "orders" \[label="GET,POST \/orders \/orders\/\*\\nscopes: orders:read or orders:write"\]/,
    );
    assert.match(dot, /"orders" -> "payments" \[label="POST \/charges\\nscopes: payments:charge\\norigins gateway"\]/);
  });

  it('draws entrypoints with a double border and external IdP tokens as a dashed node', () => {
    const dot = renderDot(shop);
    assert.match(dot, /"gateway" \[peripheries=2/);
    assert.match(dot, /"external" \[shape=ellipse, style=dashed\]/);
    assert.match(dot, /"external" -> "gateway" \[label="any route"\]/);
  });

  it('draws shadow-mode rules dashed', () => {
    assert.match(renderDot(shop), /"orders" -> "payments" \[label="POST \/refunds\/\*\\nshadow", style="dashed"\]/);
    assert.match(renderMermaid(shop), /-\.->\|"POST \/refunds\/\*<br\/>shadow"\|/);
  });

  it('draws the same edges in Mermaid, with node ids that cannot collide with keywords', () => {
    const mermaid = renderMermaid(shop);
    assert.match(mermaid, /^flowchart LR$/m);
    assert.match(mermaid, /\(\["gateway"\]\):::entrypoint/);
    assert.match(mermaid, /-->\|"GET,POST \/orders \/orders\/\*<br\/>scopes: orders:read or orders:write"\|/);
    assert.equal((mermaid.match(/-\.?->/g) ?? []).length, 4);
  });

  it('shows only the start of a long scope expression', () => {
    const long = 'a and b and c and d and e and f and g and h and i and j and k';
    const dot = renderDot(policyOf(FIXTURE.replace('"payments:charge"', `"${long}"`)), { maxScopeChars: 20 });
    assert.ok(dot.includes('scopes: a and b and c and d…'));
  });

  it('takes per-rule styles and extra edges, for an observed-versus-declared view', () => {
    const dot = renderDot(shop, {
      ruleStyles: new Map([['payments.accepts.charge', { color: 'green', annotation: 'observed 12×' }]]),
      extraEdges: [
        { from: 'gateway', to: 'payments', label: 'observed, not declared', style: { color: 'red', bold: true } },
      ],
    });
    assert.match(
      dot,
      /"orders" -> "payments" \[label="POST \/charges\\nscopes: payments:charge\\norigins gateway\\nobserved 12×", color="green"/,
    );
    assert.match(dot, /"gateway" -> "payments" \[label="observed, not declared", style="bold", color="red"/);
    assert.match(
      renderMermaid(shop, { extraEdges: [{ from: 'gateway', to: 'payments', style: { color: 'red' } }] }),
      /linkStyle 4 stroke:red/,
    );
  });

  it('escapes quotes and markup in labels', () => {
    const policy = policyOf(FIXTURE.replace('name: shop', 'name: "sh\\"op<b>"'));
    assert.ok(renderDot(policy).includes('digraph "sh\\"op<b>"'));
    assert.ok(renderMermaid(policy).includes('title: sh#quot;op#lt;b#gt;'));
  });

  it('renders SVG locally with Graphviz (WASM)', async () => {
    const svg = await renderSvg(shop);
    assert.match(svg, /^(<\?xml|<svg)/);
    assert.ok(svg.includes('<svg'));
    assert.ok(svg.includes('payments'));
  });
});
