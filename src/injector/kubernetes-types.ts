/**
 * The parts of the Kubernetes API the injector reads and writes, typed as
 * narrowly as it needs them. Everything arriving from the API server is
 * `unknown` until `admission-review.ts` has narrowed it.
 */
export interface EnvVar {
  readonly name: string;
  readonly value?: string;
  readonly valueFrom?: Readonly<Record<string, unknown>>;
}

export interface ContainerPort {
  readonly name?: string;
  readonly containerPort: number;
  readonly protocol?: string;
}

export interface Container {
  readonly name: string;
  readonly image?: string;
  readonly env?: readonly EnvVar[];
  readonly ports?: readonly ContainerPort[];
  readonly [field: string]: unknown;
}

export interface PodSpec {
  readonly containers: readonly Container[];
  readonly initContainers?: readonly Container[];
  readonly volumes?: ReadonlyArray<Readonly<Record<string, unknown>>>;
  readonly serviceAccountName?: string;
  readonly hostNetwork?: boolean;
  readonly [field: string]: unknown;
}

export interface ObjectMeta {
  readonly name?: string;
  readonly generateName?: string;
  readonly namespace?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly [field: string]: unknown;
}

export interface Pod {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata?: ObjectMeta;
  readonly spec: PodSpec;
}

/** RFC 6902 operations the injector emits (only `add`: it never removes what the pod author wrote). */
export interface JsonPatchAdd {
  readonly op: 'add';
  readonly path: string;
  readonly value: unknown;
}
