import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config/load.ts';
import { reviewAdmission } from '../../src/injector/admission-review.ts';
import { InjectorConfigSchema } from '../../src/injector/config.ts';
import { SidecarConfigSchema } from '../../src/sidecar/config.ts';
import { StsConfigSchema } from '../../src/sts/config.ts';
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

  it('leaves the call graph ConfigMap to the user, so re-applying base never overwrites their policy', () => {
    assert.equal(find(base, 'ConfigMap', 'baton-callgraph'), undefined, 'base renders no baton-callgraph');
    const policyServer = workloads(base).find((d) => d.metadata.name === 'baton-policy-server');
    const volumes = policyServer?.spec.template.spec.volumes as Array<{ name: string; configMap?: { name: string } }>;
    assert.equal(volumes.find((v) => v.name === 'callgraph')?.configMap?.name, 'baton-callgraph');
    const docs = readFileSync(join(ROOT, 'docs/kubernetes.md'), 'utf8');
    assert.ok(docs.includes('kubectl -n baton-system create configmap baton-callgraph --from-file=callgraph.yaml=deploy/base/callgraph.yaml'), 'docs/kubernetes.md creates it from the starter');
  });

  it('ships a starter call graph that policy check accepts, so a fresh install becomes ready', () => {
    const { compiled } = loadPolicyPath(join(ROOT, 'deploy/base/callgraph.yaml'));
    assert.ok(compiled.hasService('gateway'));
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

  it('gives Redis an ACL file and every client its own Redis user, with secrets mounted only where they are used', () => {
    const redis = find(base, 'Deployment', 'baton-redis') as ReturnType<typeof workloads>[number];
    const container = redis.spec.template.spec.containers[0] as { args: string[]; volumeMounts: Array<{ name: string; mountPath: string }>; readinessProbe: { exec: { command: string[] } } };
    const aclFile = container.args[container.args.indexOf('--aclfile') + 1] as string;
    const aclMount = container.volumeMounts.find((m) => aclFile.startsWith(`${m.mountPath}/`));
    const aclVolume = (redis.spec.template.spec.volumes as Array<{ name: string; secret?: { secretName: string } }>).find((v) => v.name === aclMount?.name);
    assert.equal(aclVolume?.secret?.secretName, 'baton-redis-acl', 'the ACL file comes from a Secret');
    assert.match(container.readinessProbe.exec.command.join(' '), /--user baton-admin/, 'the probe authenticates: the default user is off');

    // The STS: its own ACL user, the password from a file in a Secret mounted into the STS only.
    const stsConfigMap = find(base, 'ConfigMap', 'baton-sts') as KubernetesObject & { data: Record<string, string> };
    const dir = mkdtempSync(join(tmpdir(), 'baton-kustomize-'));
    try {
      writeFileSync(join(dir, 'sts.yaml'), stsConfigMap.data['sts.config.yaml'] as string);
      const sts = loadConfig(StsConfigSchema, { file: join(dir, 'sts.yaml') });
      assert.equal(sts.redis?.username, 'baton-sts');
      const deployment = find(base, 'Deployment', 'baton-sts') as ReturnType<typeof workloads>[number];
      const mounts = deployment.spec.template.spec.containers[0]?.volumeMounts as Array<{ name: string; mountPath: string }>;
      const mount = mounts.find((m) => sts.redis?.passwordFile.startsWith(`${m.mountPath}/`));
      const volume = (deployment.spec.template.spec.volumes as Array<{ name: string; secret?: { secretName: string } }>).find((v) => v.name === mount?.name);
      assert.equal(volume?.secret?.secretName, 'baton-redis-sts');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    // Injected pods: a valid sidecar Redis config, the Secret in the sidecar container and no other.
    const injector = workloads(example).find((d) => d.metadata.name === 'baton-injector') as ReturnType<typeof workloads>[number];
    const env = Object.fromEntries((injector.spec.template.spec.containers[0]?.env as Array<{ name: string; value: string }>).map((e) => [e.name, e.value]));
    const config = loadConfig(InjectorConfigSchema, { env, overrides: { 'tls.cert': 'unused', 'tls.key': 'unused' } });
    for (const deployment of workloads(example).filter((d) => d.metadata.namespace === 'shop')) {
      const template = deployment.spec.template;
      const object = { apiVersion: 'v1', kind: 'Pod', metadata: { ...template.metadata, generateName: `${deployment.metadata.name}-` }, spec: template.spec };
      const { review } = reviewAdmission(
        { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: deployment.metadata.name, kind: { kind: 'Pod' }, operation: 'CREATE', namespace: 'shop', object } },
        config.sidecar,
      );
      const pod = patchedPod(object, review);
      const sidecar = pod.spec.initContainers?.[0] as unknown as { env: Array<{ name: string; value?: string }>; volumeMounts: Array<{ name: string; mountPath: string }> };
      const sidecarEnv = Object.fromEntries(sidecar.env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value as string]));
      const sidecarConfig = loadConfig(SidecarConfigSchema, { env: { ...sidecarEnv, BATON_STS__CLIENT_SECRET: 'from-a-secret' } });
      const redisConfig = sidecarConfig.redis;
      assert.ok(redisConfig, `${deployment.metadata.name}: the sidecar uses Redis`);
      const mount = sidecar.volumeMounts.find((m) => redisConfig.sealKeyFile.startsWith(`${m.mountPath}/`) && redisConfig.passwordFile.startsWith(`${m.mountPath}/`));
      const volume = (pod.spec.volumes as Array<{ name: string; secret?: { secretName: string } }>).find((v) => v.name === mount?.name);
      assert.equal(volume?.secret?.secretName, `baton-redis-${deployment.metadata.name}`);
      for (const app of pod.spec.containers as Array<{ name: string; volumeMounts?: Array<{ name: string }>; env?: Array<{ name: string }> }>) {
        assert.ok(!(app.volumeMounts ?? []).some((m) => m.name === mount?.name), `${app.name} does not mount the sidecar's Redis secret`);
      }
    }
  });
});
