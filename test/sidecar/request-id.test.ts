import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRequestIds } from '../../src/sidecar/request-id.ts';

describe('request ids bound to context handles', () => {
  const ids = createRequestIds();
  const handle = `bctx_${'h'.repeat(43)}`;

  it('mints 16-character ids that differ each time', () => {
    const minted = new Set(Array.from({ length: 1000 }, () => ids.mint()));
    assert.equal(minted.size, 1000);
    for (const id of minted) assert.match(id, /^[A-Za-z0-9_-]{16}$/);
  });

  it('gets back the handle and the id it bound', () => {
    const request = ids.mint();
    assert.deepEqual(ids.unbind(ids.bind(handle, request)), { handle, requestId: request });
  });

  it('refuses a bound handle whose id, handle or tag was changed, or that another sidecar bound', () => {
    const bound = ids.bind(handle, ids.mint());
    const [, request, tag] = bound.split('.') as [string, string, string];
    assert.equal(ids.unbind(bound.replace(request, ids.mint())), undefined);
    assert.equal(ids.unbind(`bctx_${'x'.repeat(43)}.${request}.${tag}`), undefined);
    assert.equal(ids.unbind(`${handle}.${request}.${'A'.repeat(22)}`), undefined);
    assert.equal(ids.unbind(createRequestIds().bind(handle, request)), undefined);
    assert.equal(ids.unbind(handle), undefined);
    assert.equal(ids.unbind('x'.repeat(100_000)), undefined);
  });

  it('accepts only a well-formed baton-request value', () => {
    assert.equal(ids.accept('ABCDEFGHijklmn_-'), 'ABCDEFGHijklmn_-');
    assert.equal(ids.accept('short'), undefined);
    assert.equal(ids.accept('ABCDEFGHijklmn\r\n'), undefined);
    assert.equal(ids.accept(['ABCDEFGHijklmn_-', 'ABCDEFGHijklmn_-']), undefined);
    assert.equal(ids.accept(undefined), undefined);
  });
});
