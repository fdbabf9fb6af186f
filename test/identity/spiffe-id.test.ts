import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseSpiffeId, spiffeId, spiffeIdFromSubjectAltName } from '../../src/identity/spiffe-id.ts';
import { createServiceMap } from '../../src/identity/service-map.ts';

describe('SPIFFE IDs', () => {
  it('parses the trust domain and path of a valid ID', () => {
    const parsed = parseSpiffeId('spiffe://cluster.local/ns/shop/sa/orders');
    assert.equal(parsed.trustDomain, 'cluster.local');
    assert.deepEqual(parsed.segments, ['ns', 'shop', 'sa', 'orders']);
  });

  for (const [why, value] of [
    ['another scheme', 'https://cluster.local/ns/a/sa/b'],
    ['an uppercase scheme', 'SPIFFE://cluster.local/ns/a/sa/b'],
    ['an uppercase trust domain', 'spiffe://Cluster.local/ns/a/sa/b'],
    ['a port', 'spiffe://cluster.local:443/ns/a/sa/b'],
    ['userinfo', 'spiffe://u@cluster.local/ns/a/sa/b'],
    ['a dot-dot segment', 'spiffe://cluster.local/ns/../sa/b'],
    ['a dot segment', 'spiffe://cluster.local/ns/./sa/b'],
    ['an empty segment', 'spiffe://cluster.local/ns//sa/b'],
    ['a trailing slash', 'spiffe://cluster.local/ns/a/sa/b/'],
    ['a percent escape', 'spiffe://cluster.local/ns/a/sa/%62'],
    ['a query', 'spiffe://cluster.local/ns/a/sa/b?x=1'],
    ['a fragment', 'spiffe://cluster.local/ns/a/sa/b#x'],
    ['an empty trust domain', 'spiffe:///ns/a/sa/b'],
  ] as const) {
    it(`refuses an ID with ${why}`, () => {
      assert.throws(() => parseSpiffeId(value), { code: 'BATON_IDENTITY_SPIFFE_ID_INVALID' });
    });
  }

  it('mints a SpiffeId only from a valid ID, with the same typed error as the parser', () => {
    assert.equal(spiffeId('spiffe://cluster.local/ns/shop/sa/orders'), 'spiffe://cluster.local/ns/shop/sa/orders');
    assert.equal(spiffeId('spiffe://cluster.local'), 'spiffe://cluster.local');
    assert.throws(() => spiffeId('spiffe://cluster.local/ns/../sa/b'), { code: 'BATON_IDENTITY_SPIFFE_ID_INVALID' });
    assert.throws(() => spiffeId('spiffe://Cluster.local/ns/a'), { code: 'BATON_IDENTITY_SPIFFE_ID_INVALID' });
  });

  it('parses the trust domain alone as an empty path', () => {
    assert.deepEqual(parseSpiffeId('spiffe://cluster.local'), { id: 'spiffe://cluster.local', trustDomain: 'cluster.local', path: '', segments: [] });
  });

  it('accepts only IDs that are their own canonical spelling (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (s) => {
        const value = `spiffe://${s}`;
        let ok = true;
        try {
          parseSpiffeId(value);
        } catch {
          ok = false;
        }
        // Anything accepted is made only of the allowed characters: no escape, case or port can alias it.
        if (ok) assert.match(value, /^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/);
      }),
    );
  });

  it('reads the one SPIFFE ID of a certificate SAN, and none when there are two URIs', () => {
    assert.equal(spiffeIdFromSubjectAltName('URI:spiffe://td/ns/a/sa/b, DNS:localhost'), 'spiffe://td/ns/a/sa/b');
    assert.equal(spiffeIdFromSubjectAltName('URI:spiffe://td/ns/a/sa/b, URI:spiffe://td/ns/a/sa/c'), undefined);
    assert.equal(spiffeIdFromSubjectAltName('DNS:orders'), undefined);
    assert.equal(spiffeIdFromSubjectAltName(undefined), undefined);
  });
});

describe('the SPIFFE ID ↔ service rule', () => {
  const map = createServiceMap({ trustDomain: 'cluster.local', namespace: 'shop', template: '/ns/{namespace}/sa/{service}', ids: { legacy: 'spiffe://cluster.local/legacy/billing' } });

  it('maps a service to its ID and back', () => {
    assert.equal(map.idOf('orders'), 'spiffe://cluster.local/ns/shop/sa/orders');
    assert.equal(map.serviceOf('spiffe://cluster.local/ns/shop/sa/orders'), 'orders');
  });

  it('maps an ID in another namespace or trust domain to no service', () => {
    assert.equal(map.serviceOf('spiffe://cluster.local/ns/other/sa/orders'), undefined);
    assert.equal(map.serviceOf('spiffe://evil.local/ns/shop/sa/orders'), undefined);
    assert.equal(map.serviceOf('spiffe://cluster.local/ns/shop/sa/orders/extra'), undefined);
    assert.equal(map.serviceOf('spiffe://cluster.local/ns/shop/sa/Orders'), undefined);
  });

  it('lets the table override the template, and then the template spelling names nothing', () => {
    assert.equal(map.idOf('legacy'), 'spiffe://cluster.local/legacy/billing');
    assert.equal(map.serviceOf('spiffe://cluster.local/legacy/billing'), 'legacy');
    assert.equal(map.serviceOf('spiffe://cluster.local/ns/shop/sa/legacy'), undefined);
  });

  it('refuses a template without exactly one {service}, and a table entry in another trust domain', () => {
    assert.throws(() => createServiceMap({ trustDomain: 'td', namespace: 'n', template: '/ns/{namespace}', ids: {} }), { code: 'BATON_IDENTITY_UNMAPPED' });
    assert.throws(() => createServiceMap({ trustDomain: 'td', namespace: 'n', template: '/{service}/{service}', ids: {} }), { code: 'BATON_IDENTITY_UNMAPPED' });
    assert.throws(() => createServiceMap({ trustDomain: 'td', namespace: 'n', template: '/{service}', ids: { a: 'spiffe://other/a' } }), { code: 'BATON_IDENTITY_UNMAPPED' });
  });
});
