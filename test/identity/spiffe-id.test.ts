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
    assert.deepEqual(parseSpiffeId('spiffe://cluster.local'), {
      id: 'spiffe://cluster.local',
      trustDomain: 'cluster.local',
      path: '',
      segments: [],
    });
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
  const map = createServiceMap({
    trustDomain: 'cluster.local',
    namespace: 'shop',
    template: '/ns/{namespace}/sa/{service}',
    ids: { legacy: 'spiffe://cluster.local/legacy/billing' },
  });

  it('maps a service to its ID and back', () => {
    assert.equal(map.idOf('orders'), 'spiffe://cluster.local/ns/shop/sa/orders');
    assert.equal(map.serviceOf('spiffe://cluster.local/ns/shop/sa/orders'), 'orders');
  });

  it('names a service in another namespace service.namespace, both ways', () => {
    assert.equal(map.serviceOf('spiffe://cluster.local/ns/other/sa/orders'), 'orders.other');
    assert.equal(map.idOf('orders.other'), 'spiffe://cluster.local/ns/other/sa/orders');
    assert.equal(map.serviceOf('spiffe://cluster.local/ns/baton-system/sa/baton-sts'), 'baton-sts.baton-system');
  });

  it('gives a home service one name: orders, never orders.<home>', () => {
    assert.throws(() => map.idOf('orders.shop'), { code: 'BATON_IDENTITY_UNMAPPED' });
    assert.throws(() => map.idOf('Orders'), { code: 'BATON_IDENTITY_UNMAPPED' });
  });

  it('maps an ID in another trust domain, of another shape, or with an invalid segment to no service', () => {
    assert.equal(map.serviceOf('spiffe://cluster.local/ns/Other/sa/orders'), undefined);
    assert.equal(map.serviceOf('spiffe://cluster.local/ns/accepts/sa/orders'), undefined);
    assert.equal(map.serviceOf('spiffe://evil.local/ns/shop/sa/orders'), undefined);
    assert.equal(map.serviceOf('spiffe://cluster.local/ns/shop/sa/orders/extra'), undefined);
    assert.equal(map.serviceOf('spiffe://cluster.local/ns/shop/sa/Orders'), undefined);
  });

  it('lets the table override the template, and then the template spelling names nothing', () => {
    assert.equal(map.idOf('legacy'), 'spiffe://cluster.local/legacy/billing');
    assert.equal(map.serviceOf('spiffe://cluster.local/legacy/billing'), 'legacy');
    assert.equal(map.serviceOf('spiffe://cluster.local/ns/shop/sa/legacy'), undefined);
  });

  it('maps the home namespace only with a template that has no {namespace}', () => {
    const flat = createServiceMap({ trustDomain: 'td', namespace: 'shop', template: '/svc/{service}', ids: {} });
    assert.equal(flat.idOf('orders'), 'spiffe://td/svc/orders');
    assert.equal(flat.serviceOf('spiffe://td/svc/orders'), 'orders');
    assert.throws(() => flat.idOf('orders.web'), { code: 'BATON_IDENTITY_UNMAPPED' });
  });

  it('keeps one name, one ID, both ways, for any names in any namespaces (property)', () => {
    const label = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?$/);
    fc.assert(
      fc.property(
        label,
        fc.array(fc.tuple(label, fc.option(label, { nil: undefined })), { minLength: 1, maxLength: 8 }),
        fc.array(fc.tuple(label, label), { maxLength: 3 }),
        (home, names, moved) => {
          // A table that moves some services elsewhere, one ID each.
          const ids = Object.fromEntries(
            moved.map(([service, where], i) => [service, `spiffe://cluster.local/legacy/${where}-${i}`]),
          );
          const rule = createServiceMap({
            trustDomain: 'cluster.local',
            namespace: home,
            template: '/ns/{namespace}/sa/{service}',
            ids,
          });
          const seen = new Map<string, string>();
          for (const [service, namespace] of names) {
            if (namespace !== undefined && ['accepts', 'entrypoint'].includes(namespace)) continue;
            const name = namespace === undefined || namespace === home ? service : `${service}.${namespace}`;
            const id = rule.idOf(name);
            assert.equal(rule.serviceOf(id), name, `serviceOf(idOf(${name}))`);
            if (seen.has(id)) assert.equal(seen.get(id), name, `one name for ${id}`);
            seen.set(id, name);
            // The template's spelling of a moved service names nothing; a home service qualified by its home is no name at all.
            if (Object.hasOwn(ids, name))
              assert.equal(rule.serviceOf(`spiffe://cluster.local/ns/${namespace ?? home}/sa/${service}`), undefined);
            if (namespace === undefined)
              assert.throws(() => rule.idOf(`${service}.${home}`), { code: 'BATON_IDENTITY_UNMAPPED' });
          }
        },
      ),
    );
  });

  it('refuses a template without exactly one {service}, and a table entry in another trust domain', () => {
    assert.throws(
      () =>
        createServiceMap({
          trustDomain: 'td',
          namespace: 'n',
          template: '/ns/{namespace}/{namespace}/{service}',
          ids: {},
        }),
      { code: 'BATON_IDENTITY_UNMAPPED' },
    );
    assert.throws(
      () => createServiceMap({ trustDomain: 'td', namespace: 'n', template: '/ns-{namespace}/{service}', ids: {} }),
      { code: 'BATON_IDENTITY_UNMAPPED' },
    );
    assert.throws(() => createServiceMap({ trustDomain: 'td', namespace: 'n', template: '/ns/{namespace}', ids: {} }), {
      code: 'BATON_IDENTITY_UNMAPPED',
    });
    assert.throws(
      () => createServiceMap({ trustDomain: 'td', namespace: 'n', template: '/{service}/{service}', ids: {} }),
      { code: 'BATON_IDENTITY_UNMAPPED' },
    );
    assert.throws(
      () =>
        createServiceMap({ trustDomain: 'td', namespace: 'n', template: '/{service}', ids: { a: 'spiffe://other/a' } }),
      { code: 'BATON_IDENTITY_UNMAPPED' },
    );
  });
});
