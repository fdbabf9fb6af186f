/**
 * A policy reload while a request awaits its token verification: the
 * decision and the version in its audit line must come from the same
 * policy, the one read when the request started (issue #17).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import {
  compile,
  FakeSts,
  SHOP,
  startApp,
  startTestSidecar,
  type TestApp,
  type TestSidecar,
} from '../helpers/sidecar.ts';

// The same services, with the gateway → orders edge gone.
const WITHOUT_GATEWAY_EDGE = SHOP.replace(/- \{ name: from-gateway[^\n]*\n/, '');

describe('a policy reload during a slow verification', () => {
  const sts = new FakeSts();
  let app: TestApp;
  let orders: TestSidecar;

  before(async () => {
    app = await startApp();
    orders = await startTestSidecar(sts, { service: 'orders', app: app.url, upstreams: { payments: app.url } });
  });
  after(async () => {
    await orders.close();
    await app.close();
  });

  /** Verification takes a moment, and the policy is replaced by v+1 in that moment. */
  function reloadDuringVerify(): void {
    orders.duringVerify = async () => {
      orders.duringVerify = undefined;
      await new Promise((resolve) => setTimeout(resolve, 50));
      orders.policy.swap(compile(WITHOUT_GATEWAY_EDGE));
    };
  }

  it("decides inbound with the policy read at the start and logs that policy's version", async () => {
    assert.notEqual(WITHOUT_GATEWAY_EDGE, SHOP);
    orders.policy.swap(compile(SHOP));
    const startVersion = orders.policy.versionNumber;
    reloadDuringVerify();
    const token = sts.meshToken('orders', ['gateway'], { sub: 'reload-inbound' });
    const r = await request(orders.url('inbound', '/orders'), { headers: { authorization: `Bearer ${token}` } });
    await r.body.dump();
    assert.equal(r.statusCode, 200);
    assert.equal(orders.policy.versionNumber, startVersion + 1);
    const audit = orders.logs.lines.filter((l) => l.event === 'decision' && l.subject === 'reload-inbound');
    assert.equal(audit.length, 1);
    assert.equal(audit[0]?.decision, 'allow');
    assert.equal(audit[0]?.policyVersion, startVersion);
  });

  it("decides outbound with the policy read at the start and logs that policy's version", async () => {
    const allowOrdersToPayments = SHOP.replace(
      '- { name: charge, from: orders, origins: [gateway], methods: [POST], paths: ["/charges"], scopes: "pay", acr: [mfa] }',
      '- { name: charge, from: orders, methods: [POST], paths: ["/charges"] }',
    );
    orders.policy.swap(compile(allowOrdersToPayments));
    const startVersion = orders.policy.versionNumber;
    orders.duringVerify = async () => {
      orders.duringVerify = undefined;
      await new Promise((resolve) => setTimeout(resolve, 50));
      orders.policy.swap(compile(SHOP));
    };
    // A token the orders app forwards (not a handle): the outbound port verifies it, with an await.
    const token = sts.meshToken('orders', ['gateway'], { sub: 'reload-outbound' });
    const r = await request(orders.url('outbound', '/charges'), {
      method: 'POST',
      headers: { host: 'payments', authorization: `Bearer ${token}` },
    });
    await r.body.dump();
    assert.equal(orders.policy.versionNumber, startVersion + 1);
    const audit = orders.logs.lines.filter(
      (l) => l.event === 'decision' && l.subject === 'reload-outbound' && l.direction === 'outbound',
    );
    assert.equal(audit.length, 1);
    assert.equal(audit[0]?.decision, 'allow');
    assert.equal(audit[0]?.policyVersion, startVersion);
    assert.equal(r.statusCode, 200);
  });
});
