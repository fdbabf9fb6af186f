import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRequestIds } from '../../src/sidecar/request-id.ts';

describe('request ids', () => {
  const ids = createRequestIds();

  it('mints 16-character ids that differ each time', () => {
    const minted = new Set(Array.from({ length: 1000 }, () => ids.mint()));
    assert.equal(minted.size, 1000);
    for (const id of minted) assert.match(id, /^[A-Za-z0-9_-]{16}$/);
  });

  it('accepts only a well-formed baton-request value', () => {
    assert.equal(ids.accept('ABCDEFGHijklmn_-'), 'ABCDEFGHijklmn_-');
    assert.equal(ids.accept('short'), undefined);
    assert.equal(ids.accept('ABCDEFGHijklmn\r\n'), undefined);
    assert.equal(ids.accept(['ABCDEFGHijklmn_-', 'ABCDEFGHijklmn_-']), undefined);
    assert.equal(ids.accept(undefined), undefined);
  });
});
