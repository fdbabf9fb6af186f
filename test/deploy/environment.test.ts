/**
 * Every shipped deployment gives each part an environment that part
 * accepts. A part refuses a BATON_* variable no part of baton reads
 * (src/config/variables.ts); here each part's process environment, as the
 * deployment really builds it, passes that check:
 *
 * - docker-compose.yml: the image's ENV and the service's `environment`,
 *   loaded with the service's config file by baton's loader;
 * - deploy/ (base and both example overlays) and the Helm chart (several
 *   value sets): each container's `env`, the image's ENV, and the service
 *   links the kubelet adds for every Service in the pod's namespace
 *   (`BATON_STS_SERVICE_HOST`, `BATON_STS_PORT_7000_TCP`, …; no manifest
 *   turns `enableServiceLinks` off);
 * - the sidecars the injector adds to the example shop pods, with the
 *   injector settings deploy/ and the chart give it, loaded whole.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { PART_SCHEMAS, partVariables } from '../../src/cli/part-variables.ts';
import { loadConfig } from '../../src/config/load.ts';
import { checkVariables } from '../../src/config/variables.ts';
import { InjectorConfigSchema } from '../../src/injector/config.ts';
import { SidecarConfigSchema } from '../../src/sidecar/config.ts';
import { injectDeployment } from '../helpers/injector.ts';
import { helmTemplate, type KubernetesObject, kustomize } from '../helpers/kubernetes-schema.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The runtime stage's ENV: what every container of the image starts with. */
const IMAGE_ENV: Record<string, string> = (() => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const runtime = dockerfile.slice(dockerfile.search(/^FROM \S+ AS runtime$/m));
  return Object.fromEntries(
    [...runtime.matchAll(/^ENV (\w+)=(\S*)$/gm)].map(([, name, value]) => [name as string, value as string]),
  );
})();

type EnvVar = { name: string; value?: string; valueFrom?: unknown };
type Container = { name: string; image?: string; args?: string[]; env?: EnvVar[]; envFrom?: unknown[] };
type Workload = KubernetesObject & {
  spec: {
    template: {
      metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
      spec: { containers: Container[]; initContainers?: Container[]; enableServiceLinks?: boolean };
    };
  };
};
type Service = KubernetesObject & {
  spec: { clusterIP?: string; ports: Array<{ name?: string; port: number; protocol?: string }> };
};

/**
 * The variables the kubelet gives a pod for each Service in its namespace
 * (pkg/kubelet/envvars): <NAME>_SERVICE_HOST, _SERVICE_PORT, _SERVICE_PORT_<PORT
 * NAME>, _PORT, _PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR]. Headless Services get none.
 */
function serviceLinks(objects: readonly KubernetesObject[], namespace: string | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  const services = objects.filter(
    (o): o is Service =>
      o.kind === 'Service' && o.metadata.namespace === namespace && (o as Service).spec.clusterIP !== 'None',
  );
  services.forEach((service, i) => {
    const name = service.metadata.name.toUpperCase().replace(/-/g, '_');
    const ip = `10.96.0.${10 + i}`;
    const [first] = service.spec.ports;
    if (first === undefined) return;
    const url = (p: { port: number; protocol?: string }) => `${(p.protocol ?? 'TCP').toLowerCase()}://${ip}:${p.port}`;
    env[`${name}_SERVICE_HOST`] = ip;
    env[`${name}_SERVICE_PORT`] = String(first.port);
    env[`${name}_PORT`] = url(first);
    for (const port of service.spec.ports) {
      if (port.name !== undefined)
        env[`${name}_SERVICE_PORT_${port.name.toUpperCase().replace(/-/g, '_')}`] = String(port.port);
      const prefix = `${name}_PORT_${port.port}_${port.protocol ?? 'TCP'}`;
      Object.assign(env, {
        [prefix]: url(port),
        [`${prefix}_PROTO`]: (port.protocol ?? 'TCP').toLowerCase(),
        [`${prefix}_PORT`]: String(port.port),
        [`${prefix}_ADDR`]: ip,
      });
    }
  });
  return env;
}

/** A container's environment as the kubelet builds it: image ENV, service links, then its own env (a value from a Secret or a field stands as a placeholder). */
function podEnvironment(
  objects: readonly KubernetesObject[],
  namespace: string | undefined,
  pod: Workload['spec']['template']['spec'],
  container: Container,
): Record<string, string> {
  assert.equal(
    container.envFrom,
    undefined,
    `${container.name}: envFrom would need its ConfigMap or Secret's keys here`,
  );
  const links = pod.enableServiceLinks === false ? {} : serviceLinks(objects, namespace);
  const own = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value ?? 'from-a-secret-or-a-field']));
  return { ...IMAGE_ENV, ...links, ...own };
}

/** The part a container of baton's image runs, if it loads a configuration. */
function partOf(container: Container): string | undefined {
  const command = container.args?.[0];
  return command !== undefined && command in PART_SCHEMAS ? command : undefined;
}

const RENDERINGS: ReadonlyArray<[string, () => KubernetesObject[]]> = [
  ['deploy/base', () => kustomize(join(ROOT, 'deploy/base'))],
  ['deploy/overlays/example', () => kustomize(join(ROOT, 'deploy/overlays/example'))],
  ['deploy/overlays/example-spire', () => kustomize(join(ROOT, 'deploy/overlays/example-spire'))],
  [
    'helm/baton-mesh with its defaults',
    () => helmTemplate(join(ROOT, 'helm/baton-mesh'), [], { namespace: 'baton-system' }),
  ],
  [
    'helm/baton-mesh in plaintext mode',
    () =>
      helmTemplate(
        join(ROOT, 'helm/baton-mesh'),
        ['--set', 'transport.mode=plaintext', '--set', 'sts.clientsSecret=baton-sts-clients'],
        { namespace: 'baton-system' },
      ),
  ],
  [
    'helm/baton-mesh with SPIRE through spiffe-helper',
    () =>
      helmTemplate(join(ROOT, 'helm/baton-mesh'), ['--set', 'identity.source=spiffe-helper'], {
        namespace: 'baton-system',
      }),
  ],
];

/** helm template leaves the release namespace off most objects: they are in it. */
const inNamespace = (objects: KubernetesObject[], namespace: string): KubernetesObject[] =>
  objects.map((o) =>
    o.metadata.namespace === undefined && o.kind !== 'Namespace' ? { ...o, metadata: { ...o.metadata, namespace } } : o,
  );

describe('every deployment gives each part an environment it accepts', () => {
  it("docker-compose.yml: each sidecar, the STS and the policy server load their file and environment (the image's ENV and their own)", () => {
    const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
      services: Record<
        string,
        {
          build?: unknown;
          command?: string[];
          environment?: Record<string, string>;
          volumes?: Array<string | { type: string; source: string; target: string }>;
        }
      >;
    };
    const loaded: string[] = [];
    for (const [name, service] of Object.entries(compose.services)) {
      if (service.build === undefined) continue;
      const command = service.command ?? [];
      const part = command[0];
      const env = { ...IMAGE_ENV, ...(service.environment ?? {}) };
      // Parts that load no configuration (demo app, demo idp, certs, redis-acl) read no BATON_ variable either.
      if (part === undefined || !(part in PART_SCHEMAS)) continue;
      const configPath = command[command.indexOf('--config') + 1] as string;
      const bind = (service.volumes ?? [])
        .map((v) =>
          typeof v === 'string' ? { source: v.split(':')[0] as string, target: v.split(':')[1] as string } : v,
        )
        .find((v) => v.target === configPath);
      assert.ok(bind?.source.startsWith('./'), `${name} mounts its --config from the project`);
      loadConfig(PART_SCHEMAS[part] as (typeof PART_SCHEMAS)[string], {
        file: join(ROOT, (bind as { source: string }).source),
        env,
        otherParts: partVariables(),
      });
      loaded.push(name);
    }
    assert.deepEqual(
      loaded.sort(),
      ['gateway-sidecar', 'orders-sidecar', 'payments-sidecar', 'policy-server', 'sts'].sort(),
    );
  });

  for (const [label, render] of RENDERINGS) {
    it(`${label}: every container of a part passes the variable check with its env, the image's ENV and its namespace's service links`, () => {
      const objects = inNamespace(render(), 'baton-system');
      const checked: string[] = [];
      for (const workload of objects.filter((o): o is Workload =>
        ['Deployment', 'StatefulSet', 'DaemonSet'].includes(o.kind),
      )) {
        const pod = workload.spec.template.spec;
        for (const container of [...(pod.initContainers ?? []), ...pod.containers]) {
          const part = partOf(container);
          if (part === undefined) continue;
          const env = podEnvironment(objects, workload.metadata.namespace, pod, container);
          assert.ok(
            Object.keys(env).some((n) => n.startsWith('BATON_STS_SERVICE_')),
            `${workload.metadata.name} sees the control plane's service links, the case that matters`,
          );
          assert.doesNotThrow(
            () => checkVariables(PART_SCHEMAS[part] as (typeof PART_SCHEMAS)[string], env, partVariables()),
            `${label}: ${workload.metadata.name}/${container.name} (${part})`,
          );
          checked.push(part);
        }
      }
      assert.deepEqual([...new Set(checked)].sort(), ['injector', 'policy-server', 'sts']);
    });
  }

  it("the sidecars the injector adds to the example shop pods, with deploy/'s and the chart's injector settings, load whole with their pod's environment", () => {
    const example = kustomize(join(ROOT, 'deploy/overlays/example'));
    const shop = example.filter((o): o is Workload => o.kind === 'Deployment' && o.metadata.namespace === 'shop');
    assert.ok(shop.length > 0);
    const injectors: Array<[string, KubernetesObject[]]> = [
      ['deploy/overlays/example', example],
      [
        'helm/baton-mesh',
        inNamespace(helmTemplate(join(ROOT, 'helm/baton-mesh'), [], { namespace: 'baton-system' }), 'baton-system'),
      ],
    ];
    for (const [label, objects] of injectors) {
      const injector = objects.find(
        (o): o is Workload => o.kind === 'Deployment' && o.metadata.name === 'baton-injector',
      ) as Workload;
      const injectorEnv = podEnvironment(
        objects,
        injector.metadata.namespace,
        injector.spec.template.spec,
        injector.spec.template.spec.containers[0] as Container,
      );
      const settings = loadConfig(InjectorConfigSchema, {
        env: injectorEnv,
        otherParts: partVariables(),
        overrides: { 'tls.cert': 'unused', 'tls.key': 'unused' },
      });
      for (const deployment of shop) {
        const pod = injectDeployment(deployment, settings.sidecar, 'shop').pod
          .spec as unknown as Workload['spec']['template']['spec'];
        const sidecar = pod.initContainers?.find((c) => c.name === 'baton-sidecar') as Container;
        assert.ok(sidecar, `${label}: ${deployment.metadata.name} gets a sidecar`);
        const env = podEnvironment(example, 'shop', pod, sidecar);
        const config = loadConfig(SidecarConfigSchema, { env, otherParts: partVariables() });
        // The chart's home namespace is not shop: there the pod is <ServiceAccount>.shop (docs/identity.md).
        assert.ok(
          [deployment.metadata.name, `${deployment.metadata.name}.shop`].includes(config.service),
          `${label}: ${deployment.metadata.name}'s sidecar loads, as ${config.service}`,
        );
      }
    }
  });
});
