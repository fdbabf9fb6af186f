import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runBaton } from '../helpers/process.ts';

const FIXTURE = fileURLToPath(new URL('../fixtures/policy-server/callgraph.yaml', import.meta.url));
const TEXT = readFileSync(FIXTURE, 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'baton-cli-diff-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function policyFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const changed = policyFile('new.yaml', `${TEXT.replace('maxDepth: 4', 'maxDepth: 5')}    refunds:\n      accepts:\n        - from: payments\n          methods: [POST]\n          paths: ["/refunds"]\n`);

describe('baton policy diff', () => {
  it('exits 0 and says so when nothing differs', async () => {
    const result = await runBaton(['policy', 'diff', FIXTURE, policyFile('same.yaml', `# copy\n${TEXT}`)]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'no differences\n');
  });

  it('exits 1 and prints one line per change for a reviewer', async () => {
    const result = await runBaton(['policy', 'diff', FIXTURE, changed]);
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stdout, /^~ maxDepth 4 → 5$/m);
    assert.match(result.stdout, /^\+ service refunds$/m);
    assert.match(result.stdout, /^\+ edge payments → refunds \(refunds\.accepts\[0\]\) POST \/refunds$/m);
  });

  it('prints structured JSON with --json', async () => {
    const result = await runBaton(['policy', 'diff', FIXTURE, changed, '--json']);
    assert.equal(result.code, 1, result.stderr);
    const diff = JSON.parse(result.stdout);
    assert.equal(diff.equal, false);
    assert.deepEqual(diff.maxDepth, { before: 4, after: 5 });
    assert.deepEqual(diff.edges.added[0].rules[0].id, 'refunds.accepts[0]');
  });

  it('exits 2 for an invalid policy or a missing argument', async () => {
    const bad = policyFile('bad.yaml', TEXT.replace('from: gateway', 'from: nowhere'));
    const invalid = await runBaton(['policy', 'diff', FIXTURE, bad]);
    assert.equal(invalid.code, 2);
    assert.match(invalid.stderr, /bad\.yaml:\d+:\d+: error /);
    assert.equal((await runBaton(['policy', 'diff', FIXTURE])).code, 2);
  });
});
