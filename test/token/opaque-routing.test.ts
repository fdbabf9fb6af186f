import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createOpaqueRouter, prefixConflict } from '../../src/token/opaque-routing.ts';

describe('routing an opaque token to its introspecting issuer', () => {
  it('sends every opaque token to a lone issuer without a prefix', () => {
    const route = createOpaqueRouter([{ name: 'a', tokenPrefix: undefined }]);
    assert.equal(route('anything')?.name, 'a');
  });

  it('holds a lone issuer with a prefix to it', () => {
    const route = createOpaqueRouter([{ name: 'a', tokenPrefix: 'ory_at_' }]);
    assert.equal(route('ory_at_xyz')?.name, 'a');
    assert.equal(route('gho_xyz'), undefined);
  });

  it('picks the one issuer whose prefix the token starts with, case and position exact', () => {
    const route = createOpaqueRouter([
      { name: 'a', tokenPrefix: 'a_' },
      { name: 'b', tokenPrefix: 'b_' },
    ]);
    assert.deepEqual(
      ['a_1', 'b_1', 'c_1', 'A_1', 'xa_1', ''].map((t) => route(t)?.name),
      ['a', 'b', undefined, undefined, undefined, undefined],
    );
  });

  it('finds prefixes a token could match twice, or a missing one, naming the later issuer', () => {
    assert.equal(prefixConflict([]), undefined);
    assert.equal(prefixConflict([undefined]), undefined);
    assert.equal(prefixConflict(['a_', 'b_', 'c_']), undefined);
    assert.deepEqual(prefixConflict(['a_', undefined]), { index: 1, other: 0, problem: 'missing' });
    assert.deepEqual(prefixConflict([undefined, 'a_']), { index: 0, other: 1, problem: 'missing' });
    assert.deepEqual(prefixConflict(['a_', 'b_', 'a_']), { index: 2, other: 0, problem: 'same' });
    assert.deepEqual(prefixConflict(['at_', 'at_b_']), { index: 1, other: 0, problem: 'overlapping' });
    assert.deepEqual(prefixConflict(['at_b_', 'at_']), { index: 1, other: 0, problem: 'overlapping' });
  });
});
