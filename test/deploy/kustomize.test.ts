import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config/load.ts';
import { reviewAdmission } from '../../src/injector/admission-review.ts';
import { InjectorConfigSchema } from '../../src/injector/config.ts';
import { loadPolicyPath } from '../../src/policy/load.ts';
import { patchedPod } from '../injector/admission-helpers.ts';
import { type KubernetesObject, kustomize, validateKubernetesObject } from './kubernetes-schema.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const base = kustomize(join(ROOT, 'deploy/base'));
const example = kustomize(join(ROOT, 'deploy/overlays/example'));

type PodTemplate = { metadata: { labels: Record<string, string>; annotations?: Record<string, string> }; spec: Record<string, unknown> & { containers: Array<Record<string, unknown>>; serviceAccountName?: string } };
const workloads = (objects: KubernetesObject[]) => objects.filter((o) => o.kind === 'Deployment') as Array<KubernetesObject & { spec: { selector: { matchLabels: Record<string, string> }; template: PodTemplate } }>;
const find = (objects: KubernetesObject[], kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name);
const matches = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);

describe('deploy/ (kustomize)', () => {
  it('renders objects that all validate against the Kubernetes schemas', async () => {
    for (const object of [...base, ...example]) await validateKubernetesObject(object);
    const kinds = new Set(base.map((o) => o.kind));
    for (const kind of ['Namespace', 'Deployment', 'Service', 'PodDisruptionBudget', 'NetworkPolicy', 'Role', 'MutatingWebhookConfiguration', 'Certificate', 'ConfigMap']) assert.ok(kinds.has(kind), `base has a ${kind}`);
  });

  it('runs every container non-root, read-only, without privileges and with resources', () => {
    for (const deployment of workloads(example)) {
      const pod = deployment.spec.template.spec;
      assert.equal((pod.securityContext as { runAsNonRoot?: boolean }).runAsNonRoot, true, `${deployment.metadata.name} runs as non-root`);
      for (const container of pod.containers) {
        const security = container.securityContext as { readOnlyRootFilesystem: boolean; allowPrivilegeEscalation: boolean; capabilities: { drop: string[] } };
        assert.equal(security.readOnlyRootFilesystem, true, `${deployment.metadata.name} read-only root`);
        assert.equal(security.allowPrivilegeEscalation, false);
        assert.deepEqual(security.capabilities.drop, ['ALL']);
        assert.ok((container.resources as { requests?: unknown }).requests, `${deployment.metadata.name} has resource requests`);
      }
    }
  });

  it('selects real pods with every Service and PodDisruptionBudget', () => {
    for (const object of example.filter((o) => o.kind === 'Service' || o.kind === 'PodDisruptionBudget')) {
      const spec = object.spec as { selector: Record<string, string> & { matchLabels?: Record<string, string> } };
      const selector = object.kind === 'Service' ? spec.selector : (spec.selector.matchLabels as Record<string, string>);
      const target = workloads(example).find((d) => d.metadata.namespace === object.metadata.namespace && matches(selector, d.spec.template.metadata.labels));
      assert.ok(target, `${object.kind} ${object.metadata.namespace}/${object.metadata.name} selects a Deployment's pods`);
    }
  });

  it('opts namespaces in by label and never injects into the system namespaces', () => {
    const webhook = find(base, 'MutatingWebhookConfiguration', 'baton-injector') as { webhooks: Array<Record<string, unknown>> } & KubernetesObject;
    const [hook] = webhook.webhooks;
    assert.equal(hook?.failurePolicy, 'Fail');
    assert.equal(hook?.sideEffects, 'None');
    assert.deepEqual(hook?.admissionReviewVersions, ['v1']);
    const expressions = (hook?.namespaceSelector as { matchExpressions: Array<{ key: string; operator: string; values: string[] }> }).matchExpressions;
    assert.ok(expressions.some((e) => e.key === 'baton.dev/inject' && e.operator === 'In' && e.values.includes('enabled')));
    const excluded = expressions.find((e) => e.key === 'kubernetes.io/metadata.name' && e.operator === 'NotIn');
    for (const ns of ['kube-system', 'baton-system']) assert.ok(excluded?.values.includes(ns), `${ns} is excluded`);
    assert.equal(webhook.metadata.annotations?.['cert-manager.io/inject-ca-from'], 'baton-system/baton-injector');
    assert.equal((find(example, 'Namespace', 'shop') as KubernetesObject).metadata.labels?.['baton.dev/inject'], 'enabled');
    assert.notEqual((find(example, 'Namespace', 'baton-system') as KubernetesObject).metadata.labels?.['baton.dev/inject'], 'enabled');
  });

  it('ships the example call graph as a valid policy in the ConfigMap the policy server mounts', () => {
    const configMap = find(example, 'ConfigMap', 'baton-callgraph') as KubernetesObject & { data: Record<string, string> };
    assert.equal(configMap.data['callgraph.yaml'], readFileSync(join(ROOT, 'examples/shop.callgraph.yaml'), 'utf8'));
    const dir = mkdtempSync(join(tmpdir(), 'baton-callgraph-'));
    try {
      writeFileSync(join(dir, 'callgraph.yaml'), configMap.data['callgraph.yaml'] as string);
      const { compiled } = loadPolicyPath(join(dir, 'callgraph.yaml'));
      for (const name of ['gateway', 'orders', 'payments']) assert.ok(compiled.hasService(name));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('injects the example shop pods with the deployed injector settings into valid pods behind their Services', () => {
    const injector = workloads(example).find((d) => d.metadata.name === 'baton-injector') as ReturnType<typeof workloads>[number];
    const env = Object.fromEntries((injector.spec.template.spec.containers[0]?.env as Array<{ name: string; value: string }>).map((e) => [e.name, e.value]));
    const config = loadConfig(InjectorConfigSchema, { env, overrides: { 'tls.cert': 'unused', 'tls.key': 'unused' } });
    assert.equal(config.sidecar.externalIssuers.length, 1);
    for (const deployment of workloads(example).filter((d) => d.metadata.namespace === 'shop')) {
      const template = deployment.spec.template;
      const object = { apiVersion: 'v1', kind: 'Pod', metadata: { ...template.metadata, generateName: `${deployment.metadata.name}-` }, spec: template.spec };
      const { review } = reviewAdmission(
        { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: deployment.metadata.name, kind: { kind: 'Pod' }, operation: 'CREATE', namespace: 'shop', object } },
        config.sidecar,
      );
      const pod = patchedPod(object, review);
      const sidecar = pod.spec.initContainers?.[0];
      assert.equal(sidecar?.name, 'baton-sidecar');
      assert.equal(sidecar?.env?.find((e) => e.name === 'BATON_SERVICE')?.value, deployment.metadata.name);
      const service = find(example, 'Service', deployment.metadata.name) as KubernetesObject & { spec: { ports: Array<{ port: number; targetPort: string }> } };
      assert.equal(service.spec.ports[0]?.targetPort, 'baton-inbound');
      assert.equal(service.spec.ports[0]?.port, config.sidecar.defaultUpstreamPort);
      assert.ok((sidecar?.ports as Array<{ name: string }>).some((p) => p.name === 'baton-inbound'));
    }
  });

  it('renders the Grafana dashboards as one ConfigMap that Grafana\'s dashboard sidecar loads, each the file in deploy/grafana', async () => {
    const objects = kustomize(join(ROOT, 'deploy/grafana'));
    for (const object of objects) await validateKubernetesObject(object);
    const configMap = find(objects, 'ConfigMap', 'baton-grafana-dashboards') as (KubernetesObject & { data: Record<string, string> }) | undefined;
    assert.ok(configMap);
    assert.equal(configMap.metadata.labels?.grafana_dashboard, '1');
    assert.deepEqual(Object.keys(configMap.data).sort(), ['baton-sidecar.json', 'baton-sts.json']);
    for (const [name, text] of Object.entries(configMap.data)) assert.equal(text, readFileSync(join(ROOT, 'deploy/grafana', name), 'utf8'));
  });
});
