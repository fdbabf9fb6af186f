/**
 * A mesh across namespaces (#24), as real processes with real certificates:
 * the gateway in namespace web, orders and payments in shop (the home
 * namespace), the STS and the policy server in baton-system. Every
 * certificate names its process's namespace, the call graph names the
 * gateway gateway.web, and the demo's allowed and denied chains behave as in
 * a one-namespace mesh.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Mesh, startMesh } from '../../src/demo/mesh.ts';
import { runScenarios, type ScenarioResult } from '../../src/demo/scenario.ts';
import { spiffeIdFromSubjectAltName } from '../../src/identity/spiffe-id.ts';

describe(
  'a mesh across three namespaces (apps in web and shop, the control plane in baton-system)',
  { timeout: 120_000 },
  () => {
    let mesh: Mesh | undefined;
    let results: ScenarioResult[] = [];

    before(async () => {
      mesh = await startMesh({
        namespaces: { home: 'shop', services: { gateway: 'web' }, controlPlane: 'baton-system' },
      });
      results = await runScenarios(mesh);
    });
    after(async () => {
      await mesh?.stop();
    });

    it('runs each process with a certificate whose SPIFFE ID names its namespace', () => {
      const idOf = (folder: string) =>
        spiffeIdFromSubjectAltName(
          new X509Certificate(readFileSync(join(mesh?.identities?.dir as string, folder, 'tls.crt'))).subjectAltName,
        );
      assert.equal(idOf('gateway'), 'spiffe://baton.demo/ns/web/sa/gateway');
      assert.equal(idOf('orders'), 'spiffe://baton.demo/ns/shop/sa/orders');
      assert.equal(idOf('payments'), 'spiffe://baton.demo/ns/shop/sa/payments');
      assert.equal(idOf('baton-sts'), 'spiffe://baton.demo/ns/baton-system/sa/baton-sts');
      assert.equal(idOf('baton-policy-server'), 'spiffe://baton.demo/ns/baton-system/sa/baton-policy-server');
      assert.deepEqual(mesh?.names, { gateway: 'gateway.web', orders: 'orders', payments: 'payments' });
    });

    it('passes the allowed chain gateway.web → orders → payments over mTLS, every token bound, the chain named across namespaces', () => {
      const allowed = results.find((r) => r.name === 'allowed');
      assert.equal(allowed?.passed, true, JSON.stringify(allowed, null, 2).slice(0, 3000));
      assert.equal(allowed?.transport, 'mtls');
      assert.equal(allowed?.hops[2]?.chain, 'gateway.web,orders');
      const paymentsInbound = allowed?.decisions.find((d) => d.service === 'payments' && d.direction === 'inbound');
      assert.equal(paymentsInbound?.peer, 'spiffe://baton.demo/ns/shop/sa/orders');
      const ordersInbound = allowed?.decisions.find((d) => d.service === 'orders' && d.direction === 'inbound');
      assert.equal(ordersInbound?.peer, 'spiffe://baton.demo/ns/web/sa/gateway');
      assert.equal(ordersInbound?.bound, true);
    });

    it("refuses the denied chain gateway.web → payments at the gateway's sidecar, naming the rule", () => {
      const denied = results.find((r) => r.name === 'denied');
      assert.equal(denied?.passed, true, JSON.stringify(denied, null, 2).slice(0, 3000));
      assert.equal(denied?.problem?.rule, 'payments.accepts');
    });
  },
);
