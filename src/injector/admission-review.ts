/**
 * AdmissionReview v1 in and out (Kubernetes "Dynamic Admission Control"):
 * narrow the untrusted request, plan the injection, answer with a base64
 * JSON Patch. A pod that did not opt in is allowed with no patch.
 */
import { AdmissionReviewInvalidError } from './errors.ts';
import type { SidecarTemplate } from './config.ts';
import type { Pod } from './kubernetes-types.ts';
import { type InjectionPlan, planInjection } from './pod-patch.ts';

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';

export interface AdmissionResponse {
  readonly uid: string;
  readonly allowed: boolean;
  readonly patchType?: 'JSONPatch';
  readonly patch?: string;
  readonly status?: { readonly code: number; readonly message: string };
  readonly warnings?: readonly string[];
}

export interface AdmissionReviewResponse {
  readonly apiVersion: typeof ADMISSION_API_VERSION;
  readonly kind: 'AdmissionReview';
  readonly response: AdmissionResponse;
}

/** What happened, for the one log line per admission. */
export interface AdmissionOutcome {
  readonly uid: string;
  readonly namespace: string | undefined;
  readonly pod: string | undefined;
  readonly operation: string | undefined;
  readonly plan: InjectionPlan;
}

// Kubernetes caps warnings at 120 characters each, and shows only a few.
const MAX_WARNING = 120;

export function reviewAdmission(
  body: unknown,
  template: SidecarTemplate,
): { review: AdmissionReviewResponse; outcome: AdmissionOutcome } {
  const request = narrowRequest(body);
  const plan: InjectionPlan =
    request.kind !== 'Pod' || request.operation !== 'CREATE'
      ? {
          outcome: 'skip',
          reason: `not a Pod CREATE (${request.kind ?? '?'} ${request.operation ?? '?'})`,
          warnings: [],
        }
      : planInjection(narrowPod(request.object), template, request.namespace);
  const outcome: AdmissionOutcome = {
    uid: request.uid,
    namespace: request.namespace,
    pod: request.podName,
    operation: request.operation,
    plan,
  };
  return {
    review: { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response: respond(request.uid, plan) },
    outcome,
  };
}

function respond(uid: string, plan: InjectionPlan): AdmissionResponse {
  if (plan.outcome === 'deny') return { uid, allowed: false, status: { code: 422, message: `baton: ${plan.reason}` } };
  const warnings = plan.warnings.map((w) => (w.length > MAX_WARNING ? `${w.slice(0, MAX_WARNING - 1)}…` : w));
  const extra = warnings.length > 0 ? { warnings } : {};
  if (plan.outcome === 'skip') return { uid, allowed: true, ...extra };
  return {
    uid,
    allowed: true,
    patchType: 'JSONPatch',
    patch: Buffer.from(JSON.stringify(plan.patch)).toString('base64'),
    ...extra,
  };
}

interface NarrowedRequest {
  readonly uid: string;
  readonly kind: string | undefined;
  readonly operation: string | undefined;
  readonly namespace: string | undefined;
  readonly podName: string | undefined;
  readonly object: unknown;
}

function narrowRequest(body: unknown): NarrowedRequest {
  if (!isRecord(body) || body.apiVersion !== ADMISSION_API_VERSION || body.kind !== 'AdmissionReview') {
    throw new AdmissionReviewInvalidError(`expected an ${ADMISSION_API_VERSION} AdmissionReview`);
  }
  const request = body.request;
  if (!isRecord(request) || typeof request.uid !== 'string' || request.uid === '') {
    throw new AdmissionReviewInvalidError('expected request.uid in the AdmissionReview');
  }
  const kind = isRecord(request.kind) && typeof request.kind.kind === 'string' ? request.kind.kind : undefined;
  const object = request.object;
  const metadata = isRecord(object) && isRecord(object.metadata) ? object.metadata : {};
  const podName =
    typeof metadata.name === 'string'
      ? metadata.name
      : typeof metadata.generateName === 'string'
        ? `${metadata.generateName}*`
        : undefined;
  return {
    uid: request.uid,
    kind,
    operation: typeof request.operation === 'string' ? request.operation : undefined,
    namespace: typeof request.namespace === 'string' ? request.namespace : undefined,
    podName,
    object,
  };
}

function narrowPod(object: unknown): Pod {
  if (!isRecord(object) || !isRecord(object.spec) || !Array.isArray(object.spec.containers)) {
    throw new AdmissionReviewInvalidError('expected request.object to be a Pod with spec.containers');
  }
  const spec = object.spec;
  const containerLists = [spec.containers, spec.initContainers ?? []];
  for (const list of containerLists) {
    if (
      !Array.isArray(list) ||
      !list.every(
        (c) =>
          isRecord(c) &&
          typeof c.name === 'string' &&
          (c.env === undefined || Array.isArray(c.env)) &&
          (c.ports === undefined || Array.isArray(c.ports)),
      )
    ) {
      throw new AdmissionReviewInvalidError('expected every container to have a name, and env and ports to be lists');
    }
  }
  if (spec.volumes !== undefined && !Array.isArray(spec.volumes))
    throw new AdmissionReviewInvalidError('expected spec.volumes to be a list');
  const metadata = object.metadata;
  if (
    metadata !== undefined &&
    (!isRecord(metadata) ||
      (metadata.annotations !== undefined && !isRecord(metadata.annotations)) ||
      (metadata.labels !== undefined && !isRecord(metadata.labels)))
  ) {
    throw new AdmissionReviewInvalidError('expected metadata.annotations and metadata.labels to be maps');
  }
  if (
    isRecord(metadata) &&
    isRecord(metadata.annotations) &&
    !Object.values(metadata.annotations).every((v) => typeof v === 'string')
  ) {
    throw new AdmissionReviewInvalidError('expected annotation values to be strings');
  }
  return object as unknown as Pod;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
