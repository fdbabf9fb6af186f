import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createAudienceResolver } from '../../src/sts/audience.ts';

describe('the target service of a token request (RFC 8693 audience, RFC 8707 resource)', () => {
  const known = new Set(['orders', 'orders.shop', 'payments.billing']);
  const resolver = createAudienceResolver({});
  const resolve = (audiences: string[], resources: string[] = []) =>
    resolver.resolve({ audiences, resources }, (name) => known.has(name));

  it('takes a service in another namespace by its qualified name, as audience or as resource host', () => {
    assert.equal(resolve(['orders.shop']), 'orders.shop');
    assert.equal(resolve([], ['http://orders.shop/orders']), 'orders.shop');
    assert.equal(resolve([], ['https://payments.billing.svc.cluster.local:8443/charges']), 'payments.billing');
    // A host whose first two labels are no service names the service by its first label, as before.
    assert.equal(resolve([], ['https://orders.example.com/']), 'orders');
  });

  it('refuses a name the policy does not know, or not a service name at all', () => {
    for (const audience of ['payments', 'orders.other', 'orders.shop.svc', 'orders.accepts']) {
      assert.throws(() => resolve([audience]), { code: 'BATON_STS_INVALID_TARGET' }, audience);
    }
  });
});
