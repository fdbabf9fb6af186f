import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PolicyInvalidError } from '../../src/policy/language/errors.ts';
import { loadPolicyFile, loadPolicyPath } from '../../src/policy/language/load.ts';
import { policyFromJSON, policyToJSON } from '../../src/policy/language/parse.ts';

const EXAMPLE = new URL('../../examples/shop.callgraph.yaml', import.meta.url).pathname;
const FIXTURES = new URL('../fixtures/policies/', import.meta.url).pathname;

const dir = mkdtempSync(join(tmpdir(), 'baton-policy-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function invalid(code: string, line?: number) {
  return (error: unknown): boolean =>
    error instanceof PolicyInvalidError &&
    error.code === PolicyInvalidError.code &&
    error.problems.some((p) => p.code === code && (line === undefined || p.location.line === line));
}

describe('policy loading', () => {
  it('loads the example policy with no problems', () => {
    const { compiled, policy, warnings } = loadPolicyFile(EXAMPLE);
    assert.deepEqual(warnings, []);
    assert.equal(policy.metadata.name, 'shop');
    assert.equal(compiled.isEntrypoint('gateway'), true);
  });

  it('throws every located problem of a bad policy', () => {
    assert.throws(() => loadPolicyFile(join(FIXTURES, 'unknown-caller.yaml')), invalid('POLICY_UNKNOWN_SERVICE', 10));
    assert.throws(() => loadPolicyFile(join(FIXTURES, 'unknown-caller.yaml')), invalid('POLICY_BAD_METHOD', 11));
  });

  it('returns warnings without refusing the policy', () => {
    const { warnings } = loadPolicyFile(join(FIXTURES, 'warnings-only.yaml'));
    assert.deepEqual(
      warnings.map((w) => w.code),
      ['POLICY_PATH_SHADOWED'],
    );
  });

  it('refuses a missing file with a stable code', () => {
    assert.throws(() => loadPolicyFile(join(dir, 'missing.yaml')), invalid('POLICY_UNREADABLE'));
    assert.throws(() => loadPolicyPath(join(dir, 'missing')), invalid('POLICY_UNREADABLE'));
  });

  it('loads the one policy file in a directory, skipping ConfigMap bookkeeping entries', () => {
    const mount = join(dir, 'mount');
    mkdirSync(mount);
    mkdirSync(join(mount, '..2026_01_01'));
    writeFileSync(join(mount, 'README.txt'), 'not a policy');
    writeFileSync(join(mount, 'shop.yaml'), readExample());
    assert.equal(loadPolicyPath(mount).policy.metadata.name, 'shop');
  });

  it('refuses a directory with no policy or several', () => {
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    assert.throws(() => loadPolicyPath(empty), invalid('POLICY_UNREADABLE'));
    const two = join(dir, 'two');
    mkdirSync(two);
    writeFileSync(join(two, 'a.yaml'), readExample());
    writeFileSync(join(two, 'b.yml'), readExample());
    assert.throws(() => loadPolicyPath(two), invalid('POLICY_UNREADABLE'));
  });
});

describe('policy JSON (policy-server form)', () => {
  it('round-trips: JSON rebuilds the same policy, without locations, and the same digest', () => {
    const { policy, compiled } = loadPolicyFile(EXAMPLE);
    const json = JSON.parse(JSON.stringify(policyToJSON(policy)));
    const rebuilt = policyFromJSON(json);
    assert.deepEqual(policyToJSON(rebuilt), policyToJSON(policy));
    assert.equal(loadPolicyFile(EXAMPLE).compiled.digest, compiled.digest);
    const rule = rebuilt.spec.services.get('payments' as never)?.accepts[0];
    assert.deepEqual(rule?.location, { file: '<policy-server>', line: 1, column: 1 });
    assert.equal(rule?.id, 'payments.accepts.charge');
    assert.deepEqual(rule?.grpc, ['shop.v1.Payments/Charge'], 'a gRPC rule travels as written');
    assert.deepEqual(rule?.paths, ['/shop.v1.Payments/Charge']);
    assert.equal(
      rebuilt.spec.services.get('payments' as never)?.accepts.find((r) => r.name === 'refunds')?.mode,
      'shadow',
    );
  });

  it('validates JSON from the network as strictly as a file', () => {
    const json = policyToJSON(loadPolicyFile(EXAMPLE).policy) as {
      spec: { services: Record<string, { accepts: Array<Record<string, unknown>> }> };
    };
    const withUnknownKey = structuredClone(json);
    (withUnknownKey.spec.services.orders?.accepts[0] as Record<string, unknown>).orgins = ['gateway'];
    assert.throws(() => policyFromJSON(withUnknownKey), invalid('POLICY_UNKNOWN_KEY'));
    const withBadScope = structuredClone(json);
    (withBadScope.spec.services.orders?.accepts[0] as Record<string, unknown>).scopes = 'a or';
    assert.throws(() => policyFromJSON(withBadScope), invalid('POLICY_BAD_SCOPE_EXPRESSION'));
    assert.throws(() => policyFromJSON('not a policy'), invalid('POLICY_NOT_A_MAPPING'));
  });

  it('does not modify the JSON it is given', () => {
    const json = policyToJSON(loadPolicyFile(EXAMPLE).policy);
    const copy = structuredClone(json);
    policyFromJSON(json);
    assert.deepEqual(json, copy);
  });
});

function readExample(): string {
  return JSON.stringify(policyToJSON(loadPolicyFile(EXAMPLE).policy));
}
