import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import fc from 'fast-check';
import { reviewAdmission } from '../../src/injector/admission-review.ts';
import { InjectorConfigSchema } from '../../src/injector/config.ts';
import { planInjection } from '../../src/injector/pod-patch.ts';
import type { Pod } from '../../src/injector/kubernetes-types.ts';
import { fixture, patchedPod } from './admission-helpers.ts';

const template = Value.Default(InjectorConfigSchema.properties.sidecar, {}) as Parameters<typeof planInjection>[1];

function optedIn(spec: Record<string, unknown>, annotations: Record<string, string> = {}): Pod {
  return { metadata: { name: 'p', annotations: { 'baton.dev/inject': 'true', ...annotations } }, spec: spec as unknown as Pod['spec'] };
}

describe('pod patch planning', () => {
  it('takes the workload identity from the ServiceAccount, never from an annotation', () => {
    const plan = planInjection(optedIn({ serviceAccountName: 'orders', containers: [{ name: 'app', image: 'x' }] }, { 'baton.dev/service': 'payments' }), template);
    assert.equal(plan.outcome, 'inject');
    assert.ok(plan.outcome === 'inject' && plan.serviceAccount === 'orders');
    assert.ok(plan.outcome === 'inject' && plan.warnings.some((w) => w.includes('baton.dev/service is ignored')));
  });

  it('falls back to the default ServiceAccount and warns about it', () => {
    const plan = planInjection(optedIn({ containers: [{ name: 'app', image: 'x' }] }), template);
    assert.ok(plan.outcome === 'inject' && plan.serviceAccount === 'default');
    assert.ok(plan.outcome === 'inject' && plan.warnings.some((w) => w.includes('"default" ServiceAccount')));
  });

  it('refuses a hostNetwork pod', () => {
    assert.equal(planInjection(optedIn({ hostNetwork: true, containers: [{ name: 'app', image: 'x' }] }), template).outcome, 'deny');
  });

  it('refuses an app container port that collides with a sidecar port', () => {
    const plan = planInjection(optedIn({ containers: [{ name: 'app', image: 'x', ports: [{ containerPort: 8080 }, { containerPort: 7071 }] }] }), template);
    assert.equal(plan.outcome, 'deny');
  });

  it('refuses a pod that already uses a volume name baton reserves', () => {
    const plan = planInjection(optedIn({ containers: [{ name: 'app', image: 'x' }], volumes: [{ name: 'baton-tmp', emptyDir: {} }] }), template);
    assert.equal(plan.outcome, 'deny');
  });

  it('refuses a malformed review with a stable code', () => {
    assert.throws(() => reviewAdmission({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: { uid: 'u' } }, template), { code: 'BATON_ADMISSION_REVIEW_INVALID' });
    assert.throws(() => reviewAdmission({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u', kind: { kind: 'Pod' }, operation: 'CREATE', object: { spec: {} } } }, template), {
      code: 'BATON_ADMISSION_REVIEW_INVALID',
    });
  });

  it('produces a schema-valid pod with exactly one sidecar for any mix of containers, and never injects twice', () => {
    const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}[a-z0-9]$/).filter((n) => !n.startsWith('baton'));
    const envVar = fc.record({ name: fc.constantFrom('BATON_OUTBOUND', 'HTTP_PROXY', 'LOG_LEVEL', 'PORT'), value: fc.string({ maxLength: 8 }) });
    const container = fc.record({
      name,
      image: fc.constant('registry.example/app:1'),
      env: fc.option(fc.uniqueArray(envVar, { selector: (e) => e.name, maxLength: 3 }), { nil: undefined }),
      ports: fc.option(fc.array(fc.record({ containerPort: fc.integer({ min: 8000, max: 8999 }) }), { maxLength: 2 }), { nil: undefined }),
    });
    const pod = fc.record({
      containers: fc.uniqueArray(container, { selector: (c) => c.name, minLength: 1, maxLength: 4 }),
      initContainers: fc.option(fc.uniqueArray(container, { selector: (c) => c.name, maxLength: 2 }), { nil: undefined }),
      volumes: fc.option(fc.array(fc.record({ name, emptyDir: fc.constant({}) }), { maxLength: 2 }), { nil: undefined }),
      httpProxy: fc.boolean(),
      labels: fc.option(fc.constant({ app: 'x' }), { nil: undefined }),
    });
    fc.assert(
      fc.property(pod, (generated) => {
        const { httpProxy, labels, ...rest } = generated;
        const spec = JSON.parse(JSON.stringify({ serviceAccountName: 'orders', ...rest })) as Record<string, unknown>;
        const original = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', ...(labels === undefined ? {} : { labels }), annotations: { 'baton.dev/inject': 'true', 'baton.dev/http-proxy': String(httpProxy) } }, spec };
        const review = (object: unknown) => reviewAdmission({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u', kind: { kind: 'Pod' }, operation: 'CREATE', object } }, template).review;
        const first = review(original);
        assert.equal(first.response.allowed, true);
        const pod = patchedPod(original, first);
        const sidecars = (pod.spec.initContainers ?? []).filter((c) => c.name === 'baton-sidecar');
        assert.equal(sidecars.length, 1);
        assert.equal(pod.spec.initContainers?.[0]?.name, 'baton-sidecar');
        for (const c of pod.spec.containers) assert.equal(c.env?.filter((e) => e.name === 'BATON_OUTBOUND').length, 1);
        const again = review(pod);
        assert.equal(again.response.patch, undefined);
      }),
      { numRuns: 150 },
    );
  });

  it('leaves a pod that did not opt in untouched', () => {
    const { review } = reviewAdmission(fixture('pod-without-opt-in'), template);
    assert.deepEqual(review.response, { uid: '0b7a1c52-1d8e-4f7a-9b0c-3e2f1a6d5c01', allowed: true });
  });
});
