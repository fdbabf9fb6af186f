import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runCli } from '../helpers/cli.ts';

const FIXTURE = fileURLToPath(new URL('../fixtures/policy-server/callgraph.yaml', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'baton-cli-graph-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('baton policy graph', () => {
  it('prints Mermaid by default, with the edges and their routes', async () => {
    const result = await runCli(['policy', 'graph', FIXTURE]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^flowchart LR$/m);
    assert.match(result.stdout, /GET,POST \/orders \/orders\/\*/);
    assert.match(result.stdout, /POST \/charges/);
  });

  it('prints DOT with the edges', async () => {
    const result = await runCli(['policy', 'graph', FIXTURE, '--format', 'dot']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /"gateway" -> "orders"/);
    assert.match(result.stdout, /"orders" -> "payments"/);
  });

  it('writes SVG to --out', async () => {
    const out = join(dir, 'shop.svg');
    const result = await runCli(['policy', 'graph', FIXTURE, '--format', 'svg', '--out', out]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(readFileSync(out, 'utf8'), /^(<\?xml|<svg)/);
  });

  it('prints the problems of an invalid policy as file:line:col and exits 1', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, readFileSync(FIXTURE, 'utf8').replace('from: gateway', 'from: nowhere'));
    const result = await runCli(['policy', 'graph', bad]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /bad\.yaml:\d+:\d+: error /);
  });

  it('exits 2 on an unknown format', async () => {
    assert.equal((await runCli(['policy', 'graph', FIXTURE, '--format', 'png'])).code, 2);
  });
});
