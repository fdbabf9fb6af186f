import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config/load.ts';
import { checkInjectorConfig } from '../../src/injector/config.ts';
import { helperConfig } from '../../src/injector/identity-layout.ts';
import { PolicyServerConfigSchema } from '../../src/policy/distribution/config.ts';
import { createServiceMap } from '../../src/identity/service-map.ts';
import { SidecarConfigSchema } from '../../src/sidecar/config.ts';
import { StsConfigSchema } from '../../src/sts/config.ts';
import { loadPolicyPath } from '../../src/policy/language/load.ts';
import { injectDeployment, renderedInjectorConfig } from '../helpers/injector.ts';
import { withContract } from '../helpers/deploy.ts';
import {
  admittedTo,
  assertOnWritableEmptyDir,
  type KubernetesObject,
  kustomize,
  selects,
  validateKubernetesObject,
} from '../helpers/kubernetes-schema.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const base = kustomize(join(ROOT, 'deploy/base'));
const example = kustomize(join(ROOT, 'deploy/overlays/example'));
const exampleSpire = kustomize(join(ROOT, 'deploy/overlays/example-spire'));

type PodTemplate = {
  metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
  spec: Record<string, unknown> & { containers: Array<Record<string, unknown>>; serviceAccountName?: string };
};
const workloads = (objects: KubernetesObject[]) =>
  objects.filter((o) => o.kind === 'Deployment') as Array<
    KubernetesObject & { spec: { selector: { matchLabels: Record<string, string> }; template: PodTemplate } }
  >;
const find = (objects: KubernetesObject[], kind: string, name: string) =>
  objects.find((o) => o.kind === kind && o.metadata.name === name);
const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

describe('deploy/ (kustomize)', () => {
  it('renders objects that all validate against the Kubernetes schemas', async () => {
    for (const object of [...base, ...example]) await validateKubernetesObject(object);
    const kinds = new Set(base.map((o) => o.kind));
    for (const kind of [
      'Namespace',
      'Deployment',
      'Service',
      'PodDisruptionBudget',
      'NetworkPolicy',
      'Role',
      'MutatingWebhookConfiguration',
      'Certificate',
      'ConfigMap',
    ])
      assert.ok(kinds.has(kind), `base has a ${kind}`);
  });

  it('runs every container non-root, read-only, without privileges and with resources', () => {
    for (const deployment of workloads(example)) {
      const pod = deployment.spec.template.spec;
      assert.equal(
        (pod.securityContext as { runAsNonRoot?: boolean }).runAsNonRoot,
        true,
        `${deployment.metadata.name} runs as non-root`,
      );
      for (const container of pod.containers) {
        const security = container.securityContext as {
          readOnlyRootFilesystem: boolean;
          allowPrivilegeEscalation: boolean;
          capabilities: { drop: string[] };
        };
        assert.equal(security.readOnlyRootFilesystem, true, `${deployment.metadata.name} read-only root`);
        assert.equal(security.allowPrivilegeEscalation, false);
        assert.deepEqual(security.capabilities.drop, ['ALL']);
        assert.ok(
          (container.resources as { requests?: unknown }).requests,
          `${deployment.metadata.name} has resource requests`,
        );
      }
    }
  });

  it('selects real pods with every Service and PodDisruptionBudget', () => {
    for (const object of example.filter((o) => o.kind === 'Service' || o.kind === 'PodDisruptionBudget')) {
      const spec = object.spec as { selector: Record<string, string> & { matchLabels?: Record<string, string> } };
      const selector =
        object.kind === 'Service' ? spec.selector : (spec.selector.matchLabels as Record<string, string>);
      const target = workloads(example).find(
        (d) => d.metadata.namespace === object.metadata.namespace && matches(selector, d.spec.template.metadata.labels),
      );
      assert.ok(
        target,
        `${object.kind} ${object.metadata.namespace}/${object.metadata.name} selects a Deployment's pods`,
      );
    }
  });

  it('opts namespaces in by label and never injects into the system namespaces', () => {
    const webhook = find(base, 'MutatingWebhookConfiguration', 'baton-injector') as {
      webhooks: Array<Record<string, unknown>>;
    } & KubernetesObject;
    const [hook] = webhook.webhooks;
    assert.equal(hook?.failurePolicy, 'Fail');
    assert.equal(hook?.sideEffects, 'None');
    assert.deepEqual(hook?.admissionReviewVersions, ['v1']);
    const expressions = (
      hook?.namespaceSelector as { matchExpressions: Array<{ key: string; operator: string; values: string[] }> }
    ).matchExpressions;
    assert.ok(
      expressions.some((e) => e.key === 'baton.dev/inject' && e.operator === 'In' && e.values.includes('enabled')),
    );
    const excluded = expressions.find((e) => e.key === 'kubernetes.io/metadata.name' && e.operator === 'NotIn');
    for (const ns of ['kube-system', 'baton-system']) assert.ok(excluded?.values.includes(ns), `${ns} is excluded`);
    assert.equal(webhook.metadata.annotations?.['cert-manager.io/inject-ca-from'], 'baton-system/baton-injector');
    assert.equal(
      (find(example, 'Namespace', 'shop') as KubernetesObject).metadata.labels?.['baton.dev/inject'],
      'enabled',
    );
    assert.notEqual(
      (find(example, 'Namespace', 'baton-system') as KubernetesObject).metadata.labels?.['baton.dev/inject'],
      'enabled',
    );
  });

  it('leaves the call graph ConfigMap to the user, so re-applying base never overwrites their policy', () => {
    assert.equal(find(base, 'ConfigMap', 'baton-callgraph'), undefined, 'base renders no baton-callgraph');
    const policyServer = workloads(base).find((d) => d.metadata.name === 'baton-policy-server');
    const volumes = policyServer?.spec.template.spec.volumes as Array<{ name: string; configMap?: { name: string } }>;
    assert.equal(volumes.find((v) => v.name === 'callgraph')?.configMap?.name, 'baton-callgraph');
    const docs = readFileSync(join(ROOT, 'docs/kubernetes.md'), 'utf8');
    assert.ok(
      docs.includes(
        'kubectl -n baton-system create configmap baton-callgraph --from-file=callgraph.yaml=deploy/base/callgraph.yaml',
      ),
      'docs/kubernetes.md creates it from the starter',
    );
  });

  it('ships a starter call graph that policy check accepts, so a fresh install becomes ready', () => {
    const { compiled } = loadPolicyPath(join(ROOT, 'deploy/base/callgraph.yaml'));
    assert.ok(compiled.hasService('gateway'));
  });

  it('ships the example call graph as a valid policy in the ConfigMap the policy server mounts', () => {
    const configMap = find(example, 'ConfigMap', 'baton-callgraph') as KubernetesObject & {
      data: Record<string, string>;
    };
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
    const config = renderedInjectorConfig(example);
    assert.equal(config.sidecar.externalIssuers.length, 1);
    for (const deployment of workloads(example).filter((d) => d.metadata.namespace === 'shop')) {
      const { pod } = injectDeployment(deployment, config.sidecar, 'shop');
      const sidecar = pod.spec.initContainers?.[0];
      assert.equal(sidecar?.name, 'baton-sidecar');
      assert.equal(sidecar?.env?.find((e) => e.name === 'BATON_SERVICE')?.value, deployment.metadata.name);
      const service = find(example, 'Service', deployment.metadata.name) as KubernetesObject & {
        spec: { ports: Array<{ port: number; targetPort: string }> };
      };
      assert.equal(service.spec.ports[0]?.targetPort, 'baton-inbound');
      assert.equal(service.spec.ports[0]?.port, config.sidecar.defaultUpstreamPort);
      assert.ok((sidecar?.ports as Array<{ name: string }>).some((p) => p.name === 'baton-inbound'));
      // The demo apps call with plain fetch (http://orders/…): without the proxy variables fetch would go round the sidecar.
      const app = pod.spec.containers.find((c) => c.name === 'app');
      assert.equal(
        app?.env?.find((e) => e.name === 'HTTP_PROXY')?.value,
        `http://127.0.0.1:${config.sidecar.outboundPort}`,
        `${deployment.metadata.name}'s app reaches the others through its sidecar`,
      );
      assert.equal(app?.env?.find((e) => e.name === 'NODE_USE_ENV_PROXY')?.value, '1');
    }
  });

  it('gives Redis an ACL file and the STS its own Redis user, and injected mtls sidecars no Redis secret at all', () => {
    const redis = find(base, 'Deployment', 'baton-redis') as ReturnType<typeof workloads>[number];
    const container = redis.spec.template.spec.containers[0] as {
      args: string[];
      volumeMounts: Array<{ name: string; mountPath: string }>;
      readinessProbe: { exec: { command: string[] } };
    };
    const aclFile = container.args[container.args.indexOf('--aclfile') + 1] as string;
    const aclMount = container.volumeMounts.find((m) => aclFile.startsWith(`${m.mountPath}/`));
    const aclVolume = (
      redis.spec.template.spec.volumes as Array<{ name: string; secret?: { secretName: string } }>
    ).find((v) => v.name === aclMount?.name);
    assert.equal(aclVolume?.secret?.secretName, 'baton-redis-acl', 'the ACL file comes from a Secret');
    assert.match(
      container.readinessProbe.exec.command.join(' '),
      /--user baton-admin/,
      'the probe authenticates: the default user is off',
    );

    // The STS: its own ACL user, the password from a file in a Secret mounted into the STS only.
    const stsConfigMap = find(base, 'ConfigMap', 'baton-sts') as KubernetesObject & { data: Record<string, string> };
    const dir = mkdtempSync(join(tmpdir(), 'baton-kustomize-'));
    try {
      writeFileSync(join(dir, 'sts.yaml'), stsConfigMap.data['sts.config.yaml'] as string);
      const sts = loadConfig(StsConfigSchema, { file: join(dir, 'sts.yaml') });
      assert.equal(sts.redis?.username, 'baton-sts');
      const deployment = find(base, 'Deployment', 'baton-sts') as ReturnType<typeof workloads>[number];
      const mounts = deployment.spec.template.spec.containers[0]?.volumeMounts as Array<{
        name: string;
        mountPath: string;
      }>;
      const mount = mounts.find((m) => sts.redis?.passwordFile.startsWith(`${m.mountPath}/`));
      const volume = (
        deployment.spec.template.spec.volumes as Array<{ name: string; secret?: { secretName: string } }>
      ).find((v) => v.name === mount?.name);
      assert.equal(volume?.secret?.secretName, 'baton-redis-sts');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    // Injected pods run in mtls mode: their exchanged tokens are bound to the pod's certificate and never
    // shared through Redis, so no Redis credential or seal key reaches the pod (plaintext: test/injector/pod-patch.test.ts).
    const config = renderedInjectorConfig(example);
    for (const deployment of workloads(example).filter((d) => d.metadata.namespace === 'shop')) {
      const { pod } = injectDeployment(deployment, config.sidecar, 'shop');
      assert.equal(
        (pod.spec.volumes ?? []).some((v) => (v as { name: string }).name === 'baton-redis'),
        false,
        `${deployment.metadata.name}: no Redis secret in an mtls pod`,
      );
      for (const container of [...(pod.spec.initContainers ?? []), ...pod.spec.containers] as Array<{
        name: string;
        env?: Array<{ name: string }>;
      }>) {
        assert.ok(
          !(container.env ?? []).some((e) => e.name.startsWith('BATON_REDIS')),
          `${container.name} is not told about Redis`,
        );
      }
    }
  });

  it("lets one images: entry in a user's overlay set the control plane's image and the injected sidecars' alike", () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-overlay-'));
    try {
      const image = 'registry.example.com/platform/baton-mesh';
      writeFileSync(
        join(dir, 'kustomization.yaml'),
        `resources: [${relative(dir, join(ROOT, 'deploy/overlays/example'))}]\nimages:\n  - { name: ghcr.io/baton-dev/baton-mesh, newName: ${image}, newTag: "1.2.3-rc1" }\n`,
      );
      const objects = kustomize(dir);
      const images = workloads(objects).flatMap((d) =>
        d.spec.template.spec.containers.map((c) => `${d.metadata.name}: ${String(c.image)}`),
      );
      for (const line of images.filter((l) => !l.startsWith('baton-redis')))
        assert.ok(line.endsWith(`${image}:1.2.3-rc1`), line);
      const config = renderedInjectorConfig(objects);
      assert.equal(config.sidecar.image, `${image}:1.2.3-rc1`, 'the injector injects the overridden image');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // Unchanged, both still say the release's image.
    const injector = workloads(example).find((d) => d.metadata.name === 'baton-injector') as ReturnType<
      typeof workloads
    >[number];
    const env = injector.spec.template.spec.containers[0]?.env as Array<{ name: string; value: string }>;
    assert.equal(
      env.find((e) => e.name === 'BATON_SIDECAR__IMAGE')?.value,
      injector.spec.template.spec.containers[0]?.image,
    );
  });

  it("opens the STS's and the policy server's plaintext admin ports and the sidecars' baton-admin to the scraper only, and deploy/monitoring scrapes them", async () => {
    const monitoring = kustomize(join(ROOT, 'deploy/monitoring'));
    for (const object of monitoring) await validateKubernetesObject(object);
    const monitors = monitoring.filter((o) => o.kind === 'PodMonitor') as Array<
      KubernetesObject & {
        spec: {
          selector: Parameters<typeof selects>[0];
          podMetricsEndpoints: Array<{ port: string; scheme?: string; tlsConfig?: unknown }>;
        };
      }
    >;
    const scraper = {
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } },
      podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } },
    };
    const stsFile = (find(example, 'ConfigMap', 'baton-sts') as KubernetesObject & { data: Record<string, string> })
      .data['sts.config.yaml'] as string;
    const dir = mkdtempSync(join(tmpdir(), 'baton-sts-admin-'));
    let stsAdmin: number | undefined;
    try {
      writeFileSync(join(dir, 'sts.yaml'), stsFile);
      stsAdmin = (
        loadConfig(withContract(StsConfigSchema, 'sts'), { file: join(dir, 'sts.yaml') }) as unknown as {
          admin: { port?: number };
        }
      ).admin.port;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const policyContainer = workloads(example).find((d) => d.metadata.name === 'baton-policy-server')?.spec.template
      .spec.containers[0] as { env: Array<{ name: string; value?: string }> };
    const policyAdmin = loadConfig(PolicyServerConfigSchema, {
      env: Object.fromEntries(policyContainer.env.map((e) => [e.name, e.value ?? ''])),
      overrides: { policy: 'p', signingKey: 'k' },
    }).admin.port;
    for (const [name, configured] of [
      ['baton-sts', stsAdmin],
      ['baton-policy-server', policyAdmin],
    ] as const) {
      const deployment = workloads(example).find((d) => d.metadata.name === name) as ReturnType<
        typeof workloads
      >[number];
      const labels = deployment.spec.template.metadata.labels;
      const port = (
        deployment.spec.template.spec.containers[0]?.ports as Array<{ name: string; containerPort: number }>
      ).find((p) => p.name === 'admin');
      assert.ok(
        port !== undefined && port.containerPort === configured,
        `${name}: container port admin is the configured admin.port (${configured})`,
      );
      assert.deepEqual(
        admittedTo(example, { namespace: 'baton-system', labels }, 'admin'),
        [scraper],
        `${name}: only the scraper`,
      );
      const monitor = monitors.find((m) => selects(m.spec.selector, labels));
      assert.deepEqual(
        monitor?.spec.podMetricsEndpoints.map((e) => [e.port, e.scheme ?? 'http', e.tlsConfig]),
        [['admin', 'http', undefined]],
        `${name} is scraped over plain http`,
      );
    }
    const injected = { 'baton.dev/service': 'orders', 'app.kubernetes.io/name': 'orders' };
    assert.deepEqual(
      admittedTo(example, { namespace: 'shop', labels: injected }, 'baton-admin'),
      [scraper],
      "the sidecars' admin port: the scraper only",
    );
    assert.deepEqual(admittedTo(example, { namespace: 'shop', labels: injected }, 'baton-inbound'), ['everyone']);
    assert.deepEqual(
      monitors.find((m) => selects(m.spec.selector, injected))?.spec.podMetricsEndpoints.map((e) => e.port),
      ['baton-admin'],
    );
  });

  describe('workload identity', () => {
    type Container = {
      name: string;
      args?: string[];
      env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
      volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
      readinessProbe?: { httpGet?: { scheme?: string } };
      livenessProbe?: { httpGet?: { scheme?: string } };
    };
    type Volume = {
      name: string;
      csi?: { driver: string; readOnly?: boolean; volumeAttributes?: Record<string, string> };
    };
    const deployment = (name: string, objects = example) =>
      workloads(objects).find((d) => d.metadata.name === name) as ReturnType<typeof workloads>[number];
    const containerOf = (name: string, objects = example) =>
      deployment(name, objects).spec.template.spec.containers[0] as Container;
    const envOf = (container: Container) =>
      Object.fromEntries(
        (container.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value as string]),
      );
    const IDENTITY_DIR = '/var/run/secrets/spiffe.io';
    interface IdentityKeys {
      transport: { mode: string };
      identity: { certFile: string; keyFile: string; bundleFile: string };
      spiffe: { trustDomain: string; namespace: string; template: string; ids: Record<string, string> };
    }

    /** The STS configuration as the pod runs it: the ConfigMap file, then the container's environment. */
    function stsConfig(objects = example) {
      const container = containerOf('baton-sts', objects);
      const file = (container.args as string[])[(container.args as string[]).indexOf('--config') + 1] as string;
      const mount = container.volumeMounts?.find((m) => file.startsWith(`${m.mountPath}/`));
      const volume = (
        deployment('baton-sts', objects).spec.template.spec.volumes as Array<{
          name: string;
          configMap?: { name: string };
        }>
      ).find((v) => v.name === mount?.name);
      const configMap = find(objects, 'ConfigMap', volume?.configMap?.name as string) as KubernetesObject & {
        data: Record<string, string>;
      };
      const dir = mkdtempSync(join(tmpdir(), 'baton-sts-config-'));
      try {
        const path = join(dir, 'sts.config.yaml');
        writeFileSync(path, configMap.data[file.slice((mount?.mountPath.length ?? 0) + 1)] as string);
        return loadConfig(withContract(StsConfigSchema, 'sts'), {
          file: path,
          env: envOf(container),
        }) as unknown as IdentityKeys & {
          issuer: string;
          policy: { url: string };
          clients: Array<{ id: string; secret?: string; secretHash?: string; tlsClientAuth?: boolean }>;
        };
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }

    function policyServerConfig(objects = example) {
      const container = containerOf('baton-policy-server', objects);
      const args = container.args as string[];
      const flag = (name: string) => args[args.indexOf(name) + 1];
      return loadConfig(withContract(PolicyServerConfigSchema, 'policy-server'), {
        env: envOf(container),
        overrides: { policy: flag('--policy'), signingKey: flag('--signing-key') },
      }) as unknown as IdentityKeys;
    }

    function injectorConfig(objects = example) {
      const config = renderedInjectorConfig(objects);
      checkInjectorConfig(config, 'deploy/overlays/example');
      return config;
    }

    it('runs the STS and the policy server as baton-sts and baton-policy-server, each with a read-only csi-driver-spiffe volume', () => {
      for (const [name, account] of [
        ['baton-sts', 'baton-sts'],
        ['baton-policy-server', 'baton-policy-server'],
      ] as const) {
        const pod = deployment(name).spec.template.spec;
        assert.equal(pod.serviceAccountName, account);
        assert.ok(find(base, 'ServiceAccount', account), `the base creates ServiceAccount ${account}`);
        const mount = containerOf(name).volumeMounts?.find((m) => m.mountPath === IDENTITY_DIR);
        assert.equal(mount?.readOnly, true, `${name} mounts its identity read-only`);
        const volume = (pod.volumes as Volume[]).find((v) => v.name === mount?.name);
        const group = String((pod.securityContext as { runAsGroup: number }).runAsGroup);
        assert.deepEqual(
          volume?.csi,
          {
            driver: 'spiffe.csi.cert-manager.io',
            readOnly: true,
            volumeAttributes: { 'spiffe.csi.cert-manager.io/fs-group': group },
          },
          `${name}'s key is readable by its group`,
        );
        for (const probe of ['readinessProbe', 'livenessProbe'] as const)
          assert.equal(containerOf(name)[probe]?.httpGet?.scheme, 'HTTPS', `${name}'s ${probe} speaks TLS`);
      }
    });

    it('lets every ServiceAccount that mounts csi-driver-spiffe create its CertificateRequest, and no more', () => {
      const bindings = example.filter((o) => o.kind === 'RoleBinding') as Array<
        KubernetesObject & { roleRef: { name: string }; subjects: Array<{ name: string; namespace: string }> }
      >;
      const mayRequest = (namespace: string, account: string) =>
        bindings.some((b) => {
          const role = example.find(
            (o) =>
              o.kind === 'Role' && o.metadata.name === b.roleRef.name && o.metadata.namespace === b.metadata.namespace,
          ) as
            | (KubernetesObject & { rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }> })
            | undefined;
          const grants = role?.rules.some(
            (r) =>
              r.apiGroups.includes('cert-manager.io') &&
              r.resources.includes('certificaterequests') &&
              r.verbs.includes('create'),
          );
          return (
            b.metadata.namespace === namespace &&
            grants === true &&
            b.subjects.some((s) => s.name === account && s.namespace === namespace)
          );
        });
      for (const account of ['baton-sts', 'baton-policy-server'])
        assert.ok(mayRequest('baton-system', account), `${account} may request its certificate`);
      for (const d of workloads(example).filter((w) => w.metadata.namespace === 'shop'))
        assert.ok(
          mayRequest('shop', d.spec.template.spec.serviceAccountName as string),
          `${d.metadata.name} may request its certificate`,
        );
      for (const role of example.filter(
        (o) => o.kind === 'Role' && o.metadata.name === 'baton-spiffe-certificate-requester',
      ) as Array<KubernetesObject & { rules: Array<{ verbs: string[] }> }>) {
        assert.deepEqual(
          role.rules.flatMap((r) => r.verbs),
          ['create'],
        );
      }
    });

    it('gives the STS and the policy server configurations baton loads, in mtls mode, with files from their identity mount', () => {
      const sts = stsConfig();
      const policyServer = policyServerConfig();
      for (const [name, config] of [
        ['baton-sts', sts],
        ['baton-policy-server', policyServer],
      ] as const) {
        assert.equal(config.transport.mode, 'mtls', `${name} runs in mtls mode`);
        for (const file of [config.identity.certFile, config.identity.keyFile, config.identity.bundleFile])
          assert.ok(file.startsWith(`${IDENTITY_DIR}/`), `${name} reads ${file} from its identity mount`);
        assert.equal(config.spiffe.trustDomain, sts.spiffe.trustDomain);
      }
      assert.match(sts.issuer, /^https:\/\//);
      assert.match(sts.policy.url, /^https:\/\//);
    });

    it('ships no client secret: the STS knows the shop by certificate, and the injected sidecars use tls_client_auth', () => {
      const sts = stsConfig();
      const injector = injectorConfig();
      const shop = workloads(example)
        .filter((d) => d.metadata.namespace === 'shop')
        .map((d) => d.spec.template.spec.serviceAccountName as string);
      for (const account of shop)
        assert.equal(
          sts.clients.find((c) => c.id === account)?.tlsClientAuth,
          true,
          `the STS knows ${account} by certificate`,
        );
      for (const client of sts.clients)
        assert.equal(client.secret ?? client.secretHash, undefined, `no secret for ${client.id}`);
      assert.equal(
        containerOf('baton-sts').env?.some((e) => e.valueFrom !== undefined && e.name === 'BATON_CLIENTS'),
        false,
        'no client Secret is read',
      );
      assert.equal(
        example.some((o) => o.kind === 'Secret'),
        false,
      );
      assert.equal(injector.sidecar.transport.mode, 'mtls');
      // The rule both sides use is the same, so the STS maps each sidecar's certificate to its client.
      assert.deepEqual({ ...injector.sidecar.spiffe }, { ...sts.spiffe });
    });

    it("points injected sidecars at the control plane's real SPIFFE IDs and gives them a configuration baton loads", () => {
      const injector = injectorConfig();
      const sts = stsConfig();
      const map = createServiceMap({ ...sts.spiffe, namespace: 'baton-system' });
      assert.equal(injector.sidecar.stsSpiffeId, map.idOf('baton-sts'));
      assert.equal(injector.sidecar.policySpiffeId, map.idOf('baton-policy-server'));
      assert.equal(new URL(injector.sidecar.stsIssuer).href, new URL(sts.issuer).href);
      for (const deployment of workloads(example).filter((d) => d.metadata.namespace === 'shop')) {
        const { review, pod } = injectDeployment(deployment, injector.sidecar, 'shop');
        assert.equal(review.response.allowed, true, review.response.status?.message);
        const sidecar = pod.spec.initContainers?.find((c) => c.name === 'baton-sidecar');
        const env = Object.fromEntries((sidecar?.env ?? []).map((e) => [e.name, e.value ?? 'from-a-secret']));
        const config = loadConfig(withContract(SidecarConfigSchema, 'sidecar'), { env }) as unknown as IdentityKeys & {
          service: string;
          sts: { authMethod: string; clientSecret?: string };
          inbound: { plaintextPort?: number };
        };
        assert.equal(config.sts.authMethod, 'tls_client_auth');
        assert.equal(config.sts.clientSecret, undefined);
        assert.equal(
          createServiceMap(config.spiffe).idOf(config.service),
          `spiffe://${sts.spiffe.trustDomain}/ns/shop/sa/${deployment.metadata.name}`,
          "the ID csi-driver-spiffe issues for the pod's ServiceAccount",
        );
        assert.equal(
          config.inbound.plaintextPort !== undefined,
          deployment.metadata.name === 'gateway',
          'only the entrypoint listens in plaintext',
        );
      }
    });

    it("keeps the STS's and every injected sidecar's policy state on an emptyDir, so a restarted container refuses a replayed older policy", () => {
      const sts = stsConfig() as unknown as { policy: { stateFile?: string } };
      assert.ok(sts.policy.stateFile, 'the STS has policy.stateFile');
      assertOnWritableEmptyDir(
        deployment('baton-sts').spec.template.spec as never,
        containerOf('baton-sts') as never,
        sts.policy.stateFile,
      );
      const injector = injectorConfig();
      for (const d of workloads(example).filter((w) => w.metadata.namespace === 'shop')) {
        const { pod } = injectDeployment(d, injector.sidecar, 'shop');
        const sidecar = pod.spec.initContainers?.find((c) => c.name === 'baton-sidecar') as {
          name: string;
          env?: Array<{ name: string; value?: string }>;
        };
        const config = loadConfig(withContract(SidecarConfigSchema, 'sidecar'), {
          env: Object.fromEntries((sidecar.env ?? []).map((e) => [e.name, e.value ?? 'from-a-secret'])),
        }) as unknown as { policy: { stateFile?: string } };
        assert.ok(config.policy.stateFile, `${d.metadata.name}'s sidecar has policy.stateFile`);
        assertOnWritableEmptyDir(pod.spec as never, sidecar as never, config.policy.stateFile);
      }
    });

    describe('the SPIRE alternative (deploy/overlays/example-spire)', () => {
      it('renders objects that all validate against the Kubernetes schemas', async () => {
        for (const object of exampleSpire) await validateKubernetesObject(object);
      });

      it('runs spiffe-helper before the STS and the policy server on the SPIFFE CSI socket, writing the files they read', () => {
        const helperConf = (
          find(exampleSpire, 'ConfigMap', 'baton-spiffe-helper') as KubernetesObject & { data: Record<string, string> }
        ).data['helper.conf'] as string;
        // The same configuration the injector gives meshed pods.
        assert.equal(helperConf, helperConfig(injectorConfig(exampleSpire).sidecar));
        const setting = (key: string) => new RegExp(`^${key} = "([^"]+)"$`, 'm').exec(helperConf)?.[1];
        const written = [
          setting('svid_file_name'),
          setting('svid_key_file_name'),
          setting('svid_bundle_file_name'),
        ].map((f) => `${setting('cert_dir')}/${f}`);
        for (const [name, config] of [
          ['baton-sts', stsConfig(exampleSpire)],
          ['baton-policy-server', policyServerConfig(exampleSpire)],
        ] as const) {
          const pod = deployment(name, exampleSpire).spec.template.spec as unknown as {
            initContainers?: Array<Container & { restartPolicy?: string }>;
            volumes: Array<Volume & { emptyDir?: unknown }>;
          };
          const [helper] = pod.initContainers ?? [];
          assert.equal(helper?.name, 'spiffe-helper');
          assert.equal(helper?.restartPolicy, 'Always', 'a native sidecar: it keeps renewing');
          assert.deepEqual(
            [config.identity.certFile, config.identity.keyFile, config.identity.bundleFile],
            written,
            `${name} reads what the helper writes`,
          );
          const socket = helper?.volumeMounts?.find((m) => setting('agent_address')?.startsWith(`${m.mountPath}/`));
          assert.deepEqual(pod.volumes.find((v) => v.name === socket?.name)?.csi, {
            driver: 'csi.spiffe.io',
            readOnly: true,
          });
          const shared = helper?.volumeMounts?.find((m) => m.mountPath === setting('cert_dir'));
          assert.deepEqual(pod.volumes.find((v) => v.name === shared?.name)?.emptyDir, {
            medium: 'Memory',
            sizeLimit: '1Mi',
          });
          assert.equal(
            containerOf(name, exampleSpire).volumeMounts?.find((m) => m.name === shared?.name)?.readOnly,
            true,
          );
          assert.equal(
            containerOf(name, exampleSpire).env?.filter((e) => e.name === 'BATON_IDENTITY__CERT_FILE').length,
            1,
            'each setting once',
          );
        }
      });

      it('has the injector give meshed pods spiffe-helper on the SPIFFE CSI socket', () => {
        const injector = injectorConfig(exampleSpire);
        assert.equal(injector.sidecar.identity.source, 'spiffe-csi');
        const { pod } = injectDeployment(deployment('orders', exampleSpire), injector.sidecar, 'shop');
        assert.deepEqual(
          pod.spec.initContainers?.map((c) => c.name),
          ['baton-spiffe-helper', 'baton-sidecar'],
        );
      });
    });
  });

  it("renders the Grafana dashboards as one ConfigMap that Grafana's dashboard sidecar loads, each the file in deploy/grafana", async () => {
    const objects = kustomize(join(ROOT, 'deploy/grafana'));
    for (const object of objects) await validateKubernetesObject(object);
    const configMap = find(objects, 'ConfigMap', 'baton-grafana-dashboards') as
      (KubernetesObject & { data: Record<string, string> }) | undefined;
    assert.ok(configMap);
    assert.equal(configMap.metadata.labels?.grafana_dashboard, '1');
    assert.deepEqual(Object.keys(configMap.data).sort(), ['baton-sidecar.json', 'baton-sts.json']);
    for (const [name, text] of Object.entries(configMap.data))
      assert.equal(text, readFileSync(join(ROOT, 'deploy/grafana', name), 'utf8'));
  });
});
