/**
 * The question asked of the policy and its answer (DESIGN.md, "A chain
 * [c1, …, ck] calling service s is allowed when …"). Every answer names the
 * rule that decided it.
 */
import type { PolicyMode } from './model.ts';
import type { RuleId } from './model.ts';

export interface DecisionInput {
  /** The callers, origin first, immediate caller last. Empty: a token straight from an external IdP, at an entrypoint. */
  readonly chain: readonly string[];
  /** The service being called. */
  readonly target: string;
  /**
   * The request's method and path. Absent at the STS, which decides the edge
   * before minting and leaves the route to the callee's sidecar.
   */
  readonly method?: string | undefined;
  readonly path?: string | undefined;
  /** The token's scopes. */
  readonly scopes: ReadonlySet<string>;
  readonly acr?: string | undefined;
  /** A user is the subject; false for a service-identity call. */
  readonly user: boolean;
  /** The issuer that authenticated the subject (RFC 9493 `iss_sub`); matched by a rule's `issuers`. */
  readonly subjectIssuer?: string | undefined;
}

export type DenyCause =
  | 'unknown_service'
  | 'depth_exceeded'
  | 'not_entrypoint'
  | 'no_edge'
  | 'cycle'
  | 'origin'
  | 'method'
  | 'path'
  | 'scope'
  | 'acr'
  | 'user'
  | 'issuer';

export interface Allow {
  readonly allowed: true;
  readonly rule: RuleId;
  readonly reason: string;
  readonly mode: PolicyMode;
}

export interface Deny {
  readonly allowed: false;
  readonly rule: RuleId;
  /** What was expected and what was seen, for people. */
  readonly reason: string;
  readonly cause: DenyCause;
  /** `shadow`: record as `would_deny` and let the call through. */
  readonly mode: PolicyMode;
  /** With cause `acr`: the values a step-up challenge should ask for (RFC 9470). */
  readonly acrValues?: readonly string[];
}

export type Decision = Allow | Deny;

/** The compiled, immutable form every part evaluates against. */
export interface CompiledPolicy {
  readonly name: string;
  readonly maxDepth: number;
  /** sha256 (base64url) of the canonical JSON of the normalised policy. */
  readonly digest: string;
  hasService(name: string): boolean;
  isEntrypoint(name: string): boolean;
  /** O(chain length), independent of the graph's size. */
  decide(input: DecisionInput): Decision;
  /**
   * Scope tokens named on the edge caller→target and on every edge reachable
   * from target: what the STS narrows an issued token's scope to (DESIGN.md,
   * "The flow"). Undefined when there is no such edge.
   */
  usableScopes(caller: string, target: string): ReadonlySet<string> | undefined;
}
