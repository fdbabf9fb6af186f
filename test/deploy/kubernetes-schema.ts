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
const CUSTOM_KINDS = new Set(['cert-manager.io/v1/Issuer', 'cert-manager.io/v1/Certificate', 'monitoring.coreos.com/v1/ServiceMonitor', 'monitoring.coreos.com/v1/PodMonitor']);

/** Validates an object against the Kubernetes OpenAPI schema of its apiVersion and kind (kubernetes-models). */
export async function validateKubernetesObject(object: KubernetesObject): Promise<void> {
  const id = `${object.apiVersion}/${object.kind}`;
  assert.ok(object.metadata?.name, `${id} has a name`);
  if (CUSTOM_KINDS.has(id)) return;
  const module = (await import(`kubernetes-models/${object.apiVersion}`)) as Record<string, new (data: unknown) => { validate(): void }>;
  const Model = module[object.kind];
  assert.ok(Model, `kubernetes-models knows ${id}`);
  try {
    new Model(object).validate();
  } catch (error) {
    assert.fail(`${id} ${object.metadata.name} is not valid: ${error instanceof Error ? error.message : String(error)}`);
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
export function helmTemplate(chart: string, args: readonly string[] = [], options: { release?: string; namespace?: string } = {}): KubernetesObject[] {
  const helm = kubeTool('helm');
  const result = spawnSync(helm.path, ['template', options.release ?? 'baton', chart, '--namespace', options.namespace ?? 'baton-system', ...args], { encoding: 'utf8', timeout: 60_000 });
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
export function assertOnWritableEmptyDir(pod: PodSpecWithVolumes, container: { name: string; volumeMounts?: Mount[] }, file: string): void {
  const mount = (container.volumeMounts ?? []).find((m) => file.startsWith(`${m.mountPath.replace(/\/$/, '')}/`));
  assert.ok(mount, `${container.name}: ${file} is on a mounted volume, not the read-only root filesystem`);
  assert.notEqual(mount.readOnly, true, `${container.name}: ${mount.mountPath} is writable`);
  const volume = (pod.volumes ?? []).find((v) => v.name === mount.name);
  assert.ok(volume?.emptyDir, `${container.name}: ${mount.mountPath} is an emptyDir (${JSON.stringify(volume)})`);
}
