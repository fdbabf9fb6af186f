import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import jsonpatch, { type Operation } from 'fast-json-patch';
import { Pod } from 'kubernetes-models/v1/Pod';
import { type AdmissionReviewResponse, reviewAdmission } from '../../src/injector/admission-review.ts';
import { type InjectorConfig, InjectorConfigSchema, type SidecarTemplate } from '../../src/injector/config.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { KubernetesObject } from './kubernetes-schema.ts';

const FIXTURES = new URL('../fixtures/admission/', import.meta.url);

export interface AdmissionFixture {
  readonly request: { readonly uid: string; readonly object: Record<string, unknown> };
}

export function fixture(name: string): AdmissionFixture {
  return JSON.parse(readFileSync(new URL(`${name}.json`, FIXTURES), 'utf8')) as AdmissionFixture;
}

export type PodObject = {
  metadata: { annotations?: Record<string, string>; labels?: Record<string, string> };
  spec: {
    containers: Array<
      Record<string, unknown> & { name: string; env?: Array<{ name: string; value?: string; valueFrom?: unknown }> }
    >;
    initContainers?: Array<
      Record<string, unknown> & { name: string; env?: Array<{ name: string; value?: string; valueFrom?: unknown }> }
    >;
    volumes?: Array<{ name: string }>;
  };
};

/** Applies the webhook's patch as the API server would, then validates the result against the Kubernetes schema. */
export function patchedPod(original: Record<string, unknown>, review: AdmissionReviewResponse): PodObject {
  const patch = JSON.parse(Buffer.from(review.response.patch ?? 'W10=', 'base64').toString('utf8')) as Operation[];
  // validate=true: an operation on a path that does not exist throws instead of being ignored.
  const { newDocument } = jsonpatch.applyPatch(structuredClone(original), patch, true, false);
  new Pod(newDocument as ConstructorParameters<typeof Pod>[0]).validate();
  return newDocument as unknown as PodObject;
}

export function envOf(
  container: { env?: Array<{ name: string; value?: string }> } | undefined,
): Record<string, string | undefined> {
  return Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value]));
}

/**
 * A pod as the API server sends it to the webhook (CREATE in `namespace`),
 * and that pod with the webhook's patch applied.
 */
export function admitPod(
  object: Record<string, unknown>,
  template: SidecarTemplate,
  namespace: string,
): { review: AdmissionReviewResponse; pod: PodObject } {
  const { review } = reviewAdmission(
    {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: { uid: 'u', kind: { kind: 'Pod' }, operation: 'CREATE', namespace, object },
    },
    template,
  );
  return { review, pod: patchedPod(object, review) };
}

/** A rendered Deployment's pod, named from its template, through `admitPod`: what a manifest becomes once injected. */
export function injectDeployment(
  deployment: { metadata: { name: string }; spec: { template: { metadata?: object; spec: unknown } } },
  template: SidecarTemplate,
  namespace: string,
): { review: AdmissionReviewResponse; pod: PodObject } {
  const object = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { ...deployment.spec.template.metadata, generateName: `${deployment.metadata.name}-` },
    spec: deployment.spec.template.spec,
  };
  return admitPod(object, template, namespace);
}

/** A self-signed serving certificate for 127.0.0.1 (CN `cn`), written to `dir` as `<cn>.crt` and `<cn>.key`: what cert-manager would mount for the injector. */
export function selfSignedCertificate(dir: string, cn: string): { cert: string; key: string } {
  const cert = join(dir, `${cn}.crt`);
  const key = join(dir, `${cn}.key`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      `/CN=${cn}`,
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    {
      stdio: 'ignore',
    },
  );
  return { cert, key };
}

/** The injector's configuration as rendered manifests run it: the baton-injector Deployment's environment (its TLS files aside). */
export function renderedInjectorConfig(objects: readonly KubernetesObject[]): InjectorConfig {
  const injector = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'baton-injector') as
    | (KubernetesObject & {
        spec: { template: { spec: { containers: Array<{ env?: Array<{ name: string; value?: string }> }> } } };
      })
    | undefined;
  if (injector === undefined) throw new Error('no baton-injector Deployment among the rendered objects');
  const env = injector.spec.template.spec.containers[0]?.env ?? [];
  return loadConfig(InjectorConfigSchema, {
    env: Object.fromEntries(env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value as string])),
    overrides: { 'tls.cert': 'unused', 'tls.key': 'unused' },
  });
}
