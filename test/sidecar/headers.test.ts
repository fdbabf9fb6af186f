import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { endToEndHeaders } from '../../src/dataplane/wire.ts';
import { headOf } from '../helpers/http1.ts';
import { forwardRequestHeaders, headerSafe, identityHeaders, isBatonHeader } from '../../src/sidecar/headers.ts';

describe('forwarded headers', () => {
  it('drops every baton-* and baton_* header whatever its case, and keeps the rest in order', () => {
    const out = forwardRequestHeaders(
      headOf(['Host', 'h', 'Baton-Subject', 'x', 'BATON_CHAIN', 'y', 'X-Kept', '1', 'batonist', 'ok', 'X-Kept', '2']),
      { dropAuthorization: true, add: [] },
    );
    assert.deepEqual(out, ['X-Kept', '1', 'batonist', 'ok', 'X-Kept', '2']);
  });

  it('never forwards a header whose name normalises to baton-*', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z0-9-]{1,12}$/),
        fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }),
        fc.constantFrom('-', '_'),
        (suffix, upper, sep) => {
          const name = [...'baton'].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join('') + sep + suffix;
          assert.deepEqual(
            forwardRequestHeaders(headOf(['Host', 'h', name, 'v']), { dropAuthorization: false, add: [] }),
            [],
          );
        },
      ),
    );
  });

  it('drops hop-by-hop headers and those Connection names (RFC 9110 §7.6.1)', () => {
    const out = forwardRequestHeaders(
      headOf([
        'Host',
        'h',
        'Connection',
        'close, X-Hop',
        'X-Hop',
        'a',
        'Keep-Alive',
        '5',
        'TE',
        'trailers',
        'Transfer-Encoding',
        'chunked',
        'Proxy-Authorization',
        'Basic x',
        'X-End',
        'b',
      ]),
      {
        dropAuthorization: false,
        add: [],
      },
    );
    assert.deepEqual(out, ['X-End', 'b']);
  });

  it("never passes on a framing field: Host, Content-Length and Transfer-Encoding are the data plane's to write", () => {
    assert.deepEqual(
      forwardRequestHeaders(headOf(['Host', 'payments', 'Content-Length', '5', 'Accept', '*/*']), {
        dropAuthorization: false,
        add: [],
      }),
      ['Accept', '*/*'],
    );
    assert.deepEqual(
      forwardRequestHeaders(headOf(['Host', 'payments', 'Transfer-Encoding', 'chunked', 'Accept', '*/*']), {
        dropAuthorization: false,
        add: [],
      }),
      ['Accept', '*/*'],
    );
  });

  it('replaces Authorization when asked, appending its own', () => {
    const out = forwardRequestHeaders(headOf(['Host', 'payments', 'Authorization', 'Bearer app', 'Accept', '*/*']), {
      dropAuthorization: true,
      add: ['authorization', 'Bearer new'],
    });
    assert.deepEqual(out, ['Accept', '*/*', 'authorization', 'Bearer new']);
  });

  it('strips hop-by-hop and framing response headers', () => {
    assert.deepEqual(
      endToEndHeaders(
        headOf(
          [
            'Connection',
            'x-private',
            'X-Private',
            '1',
            'Keep-Alive',
            'timeout=5',
            'Set-Cookie',
            'a=1',
            'Set-Cookie',
            'b=2',
            'Content-Type',
            'text/plain',
            'Transfer-Encoding',
            'chunked',
          ],
          'response',
        ),
        'response',
      ),
      ['Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Content-Type', 'text/plain'],
    );
  });
});

describe('identity headers', () => {
  it('recognises only the baton namespace', () => {
    assert.equal(isBatonHeader('baton-subject'), true);
    assert.equal(isBatonHeader('baton_subject'), true);
    assert.equal(isBatonHeader('batonsubject'), false);
    assert.equal(isBatonHeader('x-baton-subject'), false);
  });

  it('percent-encodes claim values that could split a header or forge a chain member', () => {
    assert.equal(headerSafe('alice'), 'alice');
    assert.equal(headerSafe('a\r\nbaton-subject: root'), 'a%0D%0Abaton-subject:%20root');
    assert.equal(headerSafe('a,b'), 'a%2Cb');
    assert.equal(headerSafe('é'), '%C3%A9');
    assert.equal(headerSafe('\x7f'), '%7F');
    fc.assert(fc.property(fc.string(), (value) => assert.match(headerSafe(value), /^[\x21-\x7e]*$/)));
  });

  it('encodes spaces, so a subject with a leading or trailing space never looks like one without', () => {
    assert.equal(headerSafe(' alice'), '%20alice');
    assert.equal(headerSafe('alice '), 'alice%20');
    assert.notEqual(headerSafe(' alice'), headerSafe('alice'));
    fc.assert(
      fc.property(fc.string(), (value) =>
        assert.equal(decodeURIComponent(headerSafe(value)), value.isWellFormed() ? value : value.toWellFormed()),
      ),
    );
  });

  it('names the immediate caller, or external for an IdP token', () => {
    const mesh = identityHeaders({
      subject: 'alice',
      subjectIssuer: 'https://idp.test',
      user: true,
      chain: ['gateway', 'orders'],
      external: false,
      scopes: new Set(['b', 'a']),
      txn: 't',
      contextHandle: 'bctx_1',
    });
    assert.deepEqual(mesh, [
      'baton-subject',
      'alice',
      'baton-subject-issuer',
      'https://idp.test',
      'baton-subject-type',
      'user',
      'baton-caller',
      'orders',
      'baton-chain',
      'gateway,orders',
      'baton-scope',
      'a b',
      'baton-txn',
      't',
      'baton-context',
      'bctx_1',
    ]);
    const external = identityHeaders({
      subject: 'bob',
      subjectIssuer: 'https://idp.test/realms/a b',
      user: false,
      chain: [],
      external: true,
      scopes: new Set(),
      txn: undefined,
      contextHandle: undefined,
    });
    assert.deepEqual(external, [
      'baton-subject',
      'bob',
      'baton-subject-issuer',
      'https://idp.test/realms/a%20b',
      'baton-subject-type',
      'service',
      'baton-caller',
      'external',
      'baton-scope',
      '',
    ]);
  });
});
