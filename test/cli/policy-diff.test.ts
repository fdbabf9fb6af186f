import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { formatPolicyDiff } from '../../src/cli/policy-diff.ts';
import type { CallGraphPolicy } from '../../src/policy/language/model.ts';
import { parsePolicy } from '../../src/policy/language/parse.ts';
import { diffPolicies } from '../../src/policy/tooling/diff.ts';
import { runCli } from '../helpers/cli.ts';

const FIXTURE = fileURLToPath(new URL('../fixtures/policy-server/callgraph.yaml', import.meta.url));
const TEXT = readFileSync(FIXTURE, 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'baton-cli-diff-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function policyFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const changed = policyFile(
  'new.yaml',
  `${TEXT.replace('maxDepth: 4', 'maxDepth: 5')}    refunds:\n      accepts:\n        - from: payments\n          methods: [POST]\n          paths: ["/refunds"]\n`,
);

describe('baton policy diff', () => {
  it('exits 0 and says so when nothing differs', async () => {
    const result = await runCli(['policy', 'diff', FIXTURE, policyFile('same.yaml', `# copy\n${TEXT}`)]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'no differences\n');
  });

  it('exits 1 and prints one line per change for a reviewer', async () => {
    const result = await runCli(['policy', 'diff', FIXTURE, changed]);
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stdout, /^~ maxDepth 4 → 5$/m);
    assert.match(result.stdout, /^\+ service refunds$/m);
    assert.match(result.stdout, /^\+ edge payments → refunds \(refunds\.accepts\[0\]\) POST \/refunds$/m);
  });

  it('prints structured JSON with --json', async () => {
    const result = await runCli(['policy', 'diff', FIXTURE, changed, '--json']);
    assert.equal(result.code, 1, result.stderr);
    const diff = JSON.parse(result.stdout);
    assert.equal(diff.equal, false);
    assert.deepEqual(diff.maxDepth, { before: 4, after: 5 });
    assert.deepEqual(diff.edges.added[0].rules[0].id, 'refunds.accepts[0]');
  });

  it('exits 2 for an invalid policy or a missing argument', async () => {
    const bad = policyFile('bad.yaml', TEXT.replace('from: gateway', 'from: nowhere'));
    const invalid = await runCli(['policy', 'diff', FIXTURE, bad]);
    assert.equal(invalid.code, 2);
    assert.match(invalid.stderr, /bad\.yaml:\d+:\d+: error /);
    assert.equal((await runCli(['policy', 'diff', FIXTURE])).code, 2);
  });
});

describe('policy diff as text', () => {
  const policyOf = (text: string): CallGraphPolicy => {
    const { policy, problems } = parsePolicy(text, 'callgraph.yaml');
    assert.ok(policy, JSON.stringify(problems));
    return policy;
  };
  const shop = policyOf(TEXT);

  it('says there is no difference', () => {
    assert.equal(formatPolicyDiff(diffPolicies(shop, shop)), 'no differences\n');
  });

  it('prints an added or removed edge with its rule id and route', () => {
    const after = policyOf(
      `${TEXT}    refunds:\n      accepts:\n        - from: payments\n          methods: [POST]\n          paths: ["/refunds"]\n`,
    );
    assert.match(
      formatPolicyDiff(diffPolicies(shop, after)),
      /^\+ edge payments → refunds \(refunds\.accepts\[0\]\) POST \/refunds$/m,
    );
    assert.match(formatPolicyDiff(diffPolicies(after, shop)), /^- edge payments → refunds/m);
  });

  it('prints each changed field of a rule, before → after', () => {
    const after = policyOf(
      TEXT.replace('methods: [GET, POST]', 'methods: [GET]').replace('"orders:read or orders:write"', '"orders:read"'),
    );
    assert.match(
      formatPolicyDiff(diffPolicies(shop, after)),
      /^~ rule orders\.accepts\[0\] \(gateway → orders\): methods GET,POST → GET; scopes "orders:read or orders:write" → "orders:read"$/m,
    );
  });
});
