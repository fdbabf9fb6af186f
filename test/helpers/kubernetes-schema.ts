import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { parseAllDocuments } from 'yaml';
import { kubeTool } from '../../scripts/kube-tools.ts';

export interface KubernetesObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

// CRDs kubernetes-models does not ship; checked for shape only.
const CUSTOM_KINDS = new Set([
  'cert-manager.io/v1/Issuer',
  'cert-manager.io/v1/Certificate',
  'monitoring.coreos.com/v1/ServiceMonitor',
  'monitoring.coreos.com/v1/PodMonitor',
]);

/** Validates an object against the Kubernetes OpenAPI schema of its apiVersion and kind (kubernetes-models). */
export async function validateKubernetesObject(object: KubernetesObject): Promise<void> {
  const id = `${object.apiVersion}/${object.kind}`;
  assert.ok(object.metadata?.name, `${id} has a name`);
  if (CUSTOM_KINDS.has(id)) return;
  const module = (await import(`kubernetes-models/${object.apiVersion}`)) as Record<
    string,
    new (data: unknown) => { validate(): void }
  >;
  const Model = module[object.kind];
  assert.ok(Model, `kubernetes-models knows ${id}`);
  try {
    new Model(object).validate();
  } catch (error) {
    assert.fail(
      `${id} ${object.metadata.name} is not valid: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

export function parseManifests(text: string): KubernetesObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      assert.equal(doc.errors.length, 0, doc.errors.map((e) => e.message).join('\n'));
      return doc.toJS() as KubernetesObject | null;
    })
    .filter((o): o is KubernetesObject => o !== null);
}

/** `kubectl kustomize` rendering, with a kubectl new enough for deploy/ (scripts/kube-tools.ts); never skipped. */
export function kustomize(dir: string): KubernetesObject[] {
  const kubectl = kubeTool('kubectl');
  const result = spawnSync(kubectl.path, ['kustomize', dir], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(result.status, 0, `kubectl ${kubectl.version} kustomize ${dir} failed: ${result.stderr}`);
  return parseManifests(result.stdout);
}

/** `helm template` of a chart with extra arguments (`--set`, `-f`), with a helm ≥ 3.14 (scripts/kube-tools.ts); never skipped. */
export function helmTemplate(
  chart: string,
  args: readonly string[] = [],
  options: { release?: string; namespace?: string } = {},
): KubernetesObject[] {
  const helm = kubeTool('helm');
  const result = spawnSync(
    helm.path,
    ['template', options.release ?? 'baton', chart, '--namespace', options.namespace ?? 'baton-system', ...args],
    { encoding: 'utf8', timeout: 60_000 },
  );
  assert.equal(result.status, 0, `helm ${helm.version} template ${args.join(' ')} failed: ${result.stderr}`);
  return parseManifests(result.stdout);
}

/** `helm lint --strict` with the given arguments; returns its output for the failure message. */
export function helmLint(chart: string, args: readonly string[] = []): { status: number | null; output: string } {
  const helm = kubeTool('helm');
  const result = spawnSync(helm.path, ['lint', '--strict', chart, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

type Mount = { name: string; mountPath: string; readOnly?: boolean };
type PodSpecWithVolumes = { volumes?: Array<{ name: string; emptyDir?: Record<string, unknown> }> };

/**
 * The container writes `file` on an emptyDir of its pod: mounted writable at
 * the file's folder. Such a file outlives a restart of the container (the
 * kubelet keeps a pod's emptyDirs), not the pod's deletion.
 */
export function assertOnWritableEmptyDir(
  pod: PodSpecWithVolumes,
  container: { name: string; volumeMounts?: Mount[] },
  file: string,
): void {
  const mount = (container.volumeMounts ?? []).find((m) => file.startsWith(`${m.mountPath.replace(/\/$/, '')}/`));
  assert.ok(mount, `${container.name}: ${file} is on a mounted volume, not the read-only root filesystem`);
  assert.notEqual(mount.readOnly, true, `${container.name}: ${mount.mountPath} is writable`);
  const volume = (pod.volumes ?? []).find((v) => v.name === mount.name);
  assert.ok(volume?.emptyDir, `${container.name}: ${mount.mountPath} is an emptyDir (${JSON.stringify(volume)})`);
}

type LabelSelector = {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
};
export type NetworkPolicyPeer = { namespaceSelector?: LabelSelector; podSelector?: LabelSelector; ipBlock?: unknown };

/** Whether a label selector matches labels (Kubernetes semantics: every term must hold; an empty selector matches all). */
export function selects(selector: LabelSelector | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (selector === undefined) return true;
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) if (labels[key] !== value) return false;
  for (const { key, operator, values = [] } of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, key);
    const holds =
      operator === 'In'
        ? has && values.includes(labels[key] as string)
        : operator === 'NotIn'
          ? !has || !values.includes(labels[key] as string)
          : operator === 'Exists'
            ? has
            : !has;
    if (!holds) return false;
  }
  return true;
}

/**
 * Who the NetworkPolicies let in to a pod's named port: the `from` peers of
 * every ingress rule of every policy selecting the pod that covers the port
 * (`everyone` for a rule without `from`), or undefined when no policy selects
 * the pod (then all traffic is allowed).
 */
export function admittedTo(
  objects: readonly KubernetesObject[],
  pod: { namespace: string; labels: Record<string, string> },
  port: string,
): Array<NetworkPolicyPeer | 'everyone'> | undefined {
  type Rule = { from?: NetworkPolicyPeer[]; ports?: Array<{ port?: string | number }> };
  const policies = objects.filter(
    (o) =>
      o.kind === 'NetworkPolicy' &&
      (o.metadata.namespace ?? pod.namespace) === pod.namespace &&
      selects((o.spec as { podSelector: LabelSelector }).podSelector, pod.labels),
  );
  if (policies.length === 0) return undefined;
  const peers: Array<NetworkPolicyPeer | 'everyone'> = [];
  for (const policy of policies) {
    for (const rule of (policy.spec as { ingress?: Rule[] }).ingress ?? []) {
      if (rule.ports !== undefined && !rule.ports.some((p) => p.port === undefined || p.port === port)) continue;
      if (rule.from === undefined || rule.from.length === 0) peers.push('everyone');
      else peers.push(...rule.from);
    }
  }
  return peers;
}
