import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { parseAllDocuments } from 'yaml';

export interface KubernetesObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

// CRDs kubernetes-models does not ship; checked for shape only.
const CUSTOM_KINDS = new Set(['cert-manager.io/v1/Issuer', 'cert-manager.io/v1/Certificate', 'monitoring.coreos.com/v1/ServiceMonitor']);

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

/** `kubectl kustomize` rendering; a machine without kubectl fails loudly rather than skipping. */
export function kustomize(dir: string): KubernetesObject[] {
  const which = spawnSync('sh', ['-c', 'command -v kubectl']);
  if (which.status !== 0) {
    throw new Error('kubectl is not installed on this machine: the kustomize checks need `kubectl kustomize` (install the kubectl Debian package or binary)');
  }
  const result = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
  assert.equal(result.status, 0, `kubectl kustomize ${dir} failed: ${result.stderr}`);
  return parseManifests(result.stdout);
}
