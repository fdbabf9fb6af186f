/**
 * The call-graph policy, as the platform team writes it (DESIGN.md,
 * "Call-graph policy") after parsing and normalisation: defaults applied,
 * every rule given a stable id, and the source location kept so that
 * errors and decisions can point at the YAML.
 */
import type { ServiceName } from '../../core/service-name.ts';

/** A rule's stable id (`<service>.accepts[<i>]`, `<service>.accepts.<name>`, `spec.*`), minted only by ./rule-id.ts, which checks it. */
export type RuleId = string & { readonly __brand: 'RuleId' };

export const API_VERSION = 'baton.dev/v1alpha1';
export const KIND = 'CallGraph';

/** `from: external` — a token straight from a configured external identity provider. */
export const EXTERNAL = 'external';
export type External = typeof EXTERNAL;

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

/** Whether a user must, may or must not be the subject of the call. Default `required`. */
export type UserRequirement = 'required' | 'optional' | 'none';

/** `shadow`: a denial is recorded as `would_deny` but the call goes through (rollout). Default `enforce`. */
export type PolicyMode = 'enforce' | 'shadow';

export interface SourceLocation {
  readonly file: string;
  /** 1-based. */
  readonly line: number;
  /** 1-based. */
  readonly column: number;
}

export interface AcceptRule {
  readonly id: RuleId;
  readonly name: string | undefined;
  readonly from: ServiceName | External;
  /** The chain must have started at one of these. Absent: any origin. */
  readonly origins: readonly ServiceName[] | undefined;
  /** Absent: any method. */
  readonly methods: readonly HttpMethod[] | undefined;
  /** Path patterns: literal segments, `*` for one segment, a trailing `**` for any suffix. Absent: any path. */
  readonly paths: readonly string[] | undefined;
  /** Boolean scope expression source (`and`, `or`, `not`, parentheses). Absent: no scope needed. */
  readonly scopes: string | undefined;
  /** Acceptable `acr` values; when the token's is not among them the answer is a step-up challenge (RFC 9470). */
  readonly acr: readonly string[] | undefined;
  /**
   * The issuers that may have authenticated the subject (RFC 9493 `iss_sub`:
   * the external IdP for a user, the STS for a service identity). Absent: any.
   */
  readonly issuers: readonly string[] | undefined;
  readonly user: UserRequirement;
  readonly allowCycles: boolean;
  /** Effective mode: the rule's own, else the service's, else the graph's. */
  readonly mode: PolicyMode;
  readonly location: SourceLocation | undefined;
}

export interface ServicePolicy {
  readonly name: ServiceName;
  /** May receive user tokens from external identity providers. */
  readonly entrypoint: boolean;
  readonly mode: PolicyMode;
  readonly accepts: readonly AcceptRule[];
  readonly location: SourceLocation | undefined;
}

export interface CallGraphPolicy {
  readonly apiVersion: typeof API_VERSION;
  readonly kind: typeof KIND;
  readonly metadata: { readonly name: string };
  readonly spec: {
    /** Services in the chain, caller included. */
    readonly maxDepth: number;
    readonly mode: PolicyMode;
    readonly services: ReadonlyMap<ServiceName, ServicePolicy>;
  };
}

/** A problem found while parsing or validating a policy; always located. */
export interface PolicyProblem {
  readonly code: string;
  readonly message: string;
  readonly severity: 'error' | 'warning';
  readonly location: SourceLocation;
}
