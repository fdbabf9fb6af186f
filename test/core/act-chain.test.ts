import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildAct, callerChain, unwindAct } from '../../src/core/act-chain.ts';
import { TokenActInvalidError } from '../../src/token/errors.ts';

const TOO_DEEP = { code: TokenActInvalidError.code, reason: 'too-deep' };
const MALFORMED = { code: TokenActInvalidError.code, reason: 'malformed' };

describe('act chain (RFC 8693 §4.1)', () => {
  it('unwinds the newest actor outermost into a chain written origin first', () => {
    assert.deepEqual(unwindAct({ sub: 'orders', act: { sub: 'gateway' } }, 8), ['gateway', 'orders']);
  });

  it('builds the claim back with the newest actor outermost', () => {
    assert.deepEqual(buildAct(['gateway', 'orders']), { sub: 'orders', act: { sub: 'gateway' } });
    assert.equal(buildAct([]), undefined);
  });

  it('refuses a chain deeper than the limit without walking all of it', () => {
    let act: unknown = { sub: 's0' };
    for (let i = 1; i < 1000; i++) act = { sub: `s${i}`, act };
    assert.throws(() => unwindAct(act, 16), TOO_DEEP);
  });

  it('refuses members without a string sub', () => {
    assert.throws(() => unwindAct({ sub: 'a', act: { sub: 3 } }, 8), MALFORMED);
    assert.throws(() => unwindAct([{ sub: 'a' }], 8), MALFORMED);
  });

  it('takes the chain of a client-credentials token from client_id', () => {
    assert.deepEqual(callerChain({ client_id: 'orders' }, 8), ['orders']);
  });

  it('refuses an act whose outermost actor is not the immediate caller', () => {
    assert.throws(
      () => callerChain({ client_id: 'payments', act: { sub: 'orders', act: { sub: 'gateway' } } }, 8),
      MALFORMED,
    );
  });
});
