import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runCli } from '../helpers/cli.ts';

const EXAMPLE = 'examples/shop.callgraph.yaml';
const FIXTURES = 'test/fixtures/policies';

describe('baton policy check', () => {
  it('prints ok and exits 0 for a good policy', async () => {
    const { code, stdout } = await runCli(['policy', 'check', EXAMPLE]);
    assert.equal(code, 0);
    assert.equal(stdout, `${EXAMPLE}: ok\n`);
  });

  it('prints file:line:col problems and exits 1 for a bad policy', async () => {
    const file = `${FIXTURES}/unknown-caller.yaml`;
    const { code, stdout } = await runCli(['policy', 'check', EXAMPLE, file]);
    assert.equal(code, 1);
    assert.equal(stdout.split('\n')[0], `${EXAMPLE}: ok`);
    assert.match(stdout, new RegExp(`^${file}:10:17: error POLICY_UNKNOWN_SERVICE `, 'm'));
    assert.match(stdout, new RegExp(`^${file}:11:21: error POLICY_BAD_METHOD `, 'm'));
  });

  it('points inside a scope expression', async () => {
    const file = `${FIXTURES}/bad-scope.yaml`;
    const { code, stdout } = await runCli(['policy', 'check', file]);
    assert.equal(code, 1);
    assert.match(stdout, new RegExp(`^${file}:5:13: error POLICY_BAD_MAX_DEPTH `, 'm'));
    assert.match(stdout, new RegExp(`^${file}:12:35: error POLICY_BAD_SCOPE_EXPRESSION `, 'm'));
  });

  it('passes a policy with only warnings, unless --strict', async () => {
    const file = `${FIXTURES}/warnings-only.yaml`;
    const relaxed = await runCli(['policy', 'check', file]);
    assert.equal(relaxed.code, 0);
    assert.match(relaxed.stdout, /warning POLICY_PATH_SHADOWED/);
    assert.match(relaxed.stdout, /: ok \(1 warning\)/);
    const strict = await runCli(['policy', 'check', '--strict', file]);
    assert.equal(strict.code, 1);
  });

  it('under --strict, counts a line marked warning as a warning and says --strict refused it', async () => {
    const file = `${FIXTURES}/warnings-only.yaml`;
    const strict = await runCli(['policy', 'check', '--strict', file]);
    assert.equal(strict.code, 1);
    assert.match(strict.stdout, /: warning POLICY_PATH_SHADOWED /);
    assert.equal(strict.stderr.trim(), `${file}: 1 warning (--strict refuses warnings)`);
  });

  it('reports an unreadable file as a problem and exits 1', async () => {
    const { code, stdout } = await runCli(['policy', 'check', 'no/such/file.yaml']);
    assert.equal(code, 1);
    assert.match(stdout, /^no\/such\/file\.yaml:1:1: error POLICY_UNREADABLE /);
  });

  it('exits 2 without a file', async () => {
    const { code } = await runCli(['policy', 'check']);
    assert.equal(code, 2);
  });
});
