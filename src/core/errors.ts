/**
 * Errors are types with stable codes (STYLE rule 2). Each cause gets one
 * class, made by `defineError`, carrying the HTTP status, a stable `code`
 * that tests assert on, and the RFC 9457 problem `type` URI. Where a cause
 * maps onto an OAuth error (RFC 6749 §5.2, RFC 6750 §3.1, RFC 8693 §2.2.2)
 * the spec names it too. Messages say what was expected and what was seen;
 * they must never contain a token.
 */
export const PROBLEM_TYPE_BASE = 'https://baton.dev/problems/';

export interface ErrorSpec {
  /** Stable machine code, e.g. `BATON_TOKEN_EXPIRED`. */
  readonly code: string;
  readonly status: number;
  /** Short, human summary of the problem type (RFC 9457 §3.1.3). */
  readonly title: string;
  /** OAuth error code when the cause has one. */
  readonly oauthError?: string;
}

export interface ErrorOptions {
  readonly cause?: unknown;
  /** Extension members for the problem document (never secrets). */
  readonly extensions?: Readonly<Record<string, unknown>>;
}

export class BatonError extends Error {
  readonly code: string;
  readonly status: number;
  readonly title: string;
  readonly type: string;
  readonly oauthError: string | undefined;
  readonly extensions: Readonly<Record<string, unknown>>;

  constructor(spec: ErrorSpec, detail: string, options: ErrorOptions = {}) {
    super(detail, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = spec.code;
    this.code = spec.code;
    this.status = spec.status;
    this.title = spec.title;
    this.type = PROBLEM_TYPE_BASE + slug(spec.code);
    this.oauthError = spec.oauthError;
    this.extensions = options.extensions ?? {};
  }
}

export type BatonErrorClass = {
  new (detail: string, options?: ErrorOptions): BatonError;
  readonly code: string;
};

/** Defines one error class per cause, in the manner of @fastify/error. */
export function defineError(spec: ErrorSpec): BatonErrorClass {
  const Defined = class extends BatonError {
    static readonly code = spec.code;
    constructor(detail: string, options?: ErrorOptions) {
      super(spec, detail, options);
    }
  };
  Object.defineProperty(Defined, 'name', { value: spec.code });
  return Defined;
}

function slug(code: string): string {
  return code.replace(/^BATON_/, '').toLowerCase().replace(/_/g, '-');
}

export function isBatonError(value: unknown): value is BatonError {
  return value instanceof BatonError;
}
