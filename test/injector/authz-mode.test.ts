/**
 * The injector's authz data plane (docs/istio.md): a pod that runs
 * istio-proxy gets `baton authz` beside it instead of baton's sidecar, with
 * a configuration `baton authz` loads, the label the Istio objects of
 * deploy/istio/ select on, and the control plane's ports left out of
 * Istio's capture.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import { loadAuthzConfig } from '../../src/authz/config.ts';
import { reviewAdmission } from '../../src/injector/admission-review.ts';
import { InjectorConfigSchema } from '../../src/injector/config.ts';
import { planInjection } from '../../src/injector/pod-patch.ts';
import type { Pod } from '../../src/injector/kubernetes-types.ts';
import { envOf, patchedPod } from '../helpers/injector.ts';

type Template = Parameters<typeof planInjection>[1];
const template = Value.Default(InjectorConfigSchema.properties.sidecar, {}) as Template;

function pod(annotations: Record<string, string> = {}): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'orders-1', annotations: { 'baton.dev/inject': 'true', ...annotations } },
    spec: {
      serviceAccountName: 'orders',
      containers: [{ name: 'app', image: 'shop/orders', ports: [{ containerPort: 8080 }] }],
    },
  };
}

function inject(object: Record<string, unknown>, config: Template = template) {
  const { review } = reviewAdmission(
    {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: { uid: 'u', kind: { kind: 'Pod' }, operation: 'CREATE', namespace: 'shop', object },
    },
    config,
  );
  assert.equal(review.response.allowed, true, JSON.stringify(review.response));
  return patchedPod(object, review);
}

describe("the injector's authz data plane (baton authz beside istio-proxy)", () => {
  it('adds baton authz as a native sidecar, configured by BATON_* variables that baton authz loads as they are', () => {
    const patched = inject(pod({ 'baton.dev/data-plane': 'authz' }));
    const names = (patched.spec.initContainers ?? []).map((c) => c.name);
    assert.ok(names.includes('baton-authz') && !names.includes('baton-sidecar'), names.join(', '));
    const container = patched.spec.initContainers?.find((c) => c.name === 'baton-authz');
    assert.deepEqual(container?.args, ['authz']);
    assert.equal(container?.restartPolicy, 'Always');
    const env = envOf(container);
    const config = loadAuthzConfig({
      env: Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v ?? 'from-a-secret'])),
    });
    assert.equal(config.service, 'orders.shop');
    assert.equal(config.host, '127.0.0.1', "the check ports on the pod's loopback, where istio-proxy reaches them");
    assert.equal(config.grpc.port, 7073);
    assert.equal(config.http.port, 7074);
    assert.equal(config.admin.host, '0.0.0.0');
    assert.equal(config.transport.mode, 'mtls');
    assert.match(config.identity.certFile, /tls\.crt$/);
    assert.equal(config.sts.clientId, 'orders.shop');
  });

  it('leaves the app containers alone: the app calls out through istio-proxy, with no outbound port or proxy setting from baton', () => {
    const patched = inject(pod({ 'baton.dev/data-plane': 'authz' }));
    const app = patched.spec.containers.find((c) => c.name === 'app');
    assert.deepEqual(app?.env ?? [], []);
  });

  it("labels the pod for the Istio objects of deploy/istio/ and keeps the STS and policy server ports out of Istio's capture, beside those the pod already excludes", () => {
    const patched = inject(
      pod({ 'baton.dev/data-plane': 'authz', 'traffic.sidecar.istio.io/excludeOutboundPorts': '5432' }),
    );
    assert.equal(patched.metadata.labels?.['baton.dev/data-plane'], 'authz');
    assert.equal(patched.metadata.annotations?.['traffic.sidecar.istio.io/excludeOutboundPorts'], '5432,7000,7100');
  });

  it("takes the data plane from the injector's config unless the pod's annotation names the other", () => {
    const authzByDefault = { ...template, dataPlane: 'authz' } as Template;
    assert.ok(inject(pod(), authzByDefault).spec.initContainers?.some((c) => c.name === 'baton-authz'));
    assert.ok(
      inject(pod({ 'baton.dev/data-plane': 'sidecar' }), authzByDefault).spec.initContainers?.some(
        (c) => c.name === 'baton-sidecar',
      ),
    );
    const plan = planInjection(
      {
        metadata: { annotations: { 'baton.dev/inject': 'true', 'baton.dev/data-plane': 'envoy' } },
        spec: { serviceAccountName: 'orders', containers: [{ name: 'app' }] },
      } as unknown as Pod,
      template,
    );
    assert.equal(plan.outcome, 'deny');
  });

  it("refuses an app port that is one of baton authz's", () => {
    const object = pod({ 'baton.dev/data-plane': 'authz' });
    (object.spec as { containers: Array<{ ports: Array<{ containerPort: number }> }> }).containers[0]!.ports = [
      { containerPort: 7073 },
    ];
    assert.equal(planInjection(object as unknown as Pod, template, 'shop').outcome, 'deny');
  });
});
