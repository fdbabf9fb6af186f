/**
 * Errors, one idiom (STYLE "Errors are types with stable codes"): every
 * error baton raises is a `BatonError`, with a stable `code` that tests,
 * operators and log readers match on, a message that says what was
 * expected and what was seen (never a token), an optional `reason` and
 * the `cause`.
 *
 * A code names what an operator does about a failure; a `reason` names
 * the sub-cause within it, where the operator acts the same way whichever
 * it is (`BATON_BAD_REQUEST` with reason `missing-parameter`). A reason is
 * stable: lower-case words, or the sub-cause's own code where it has one
 * elsewhere (a token code, node's `ECONNREFUSED`, llhttp's `HPE_…`).
 *
 * Where an HTTP answer is made the error is an `HttpError`, one class per
 * code made by `defineError`: it adds the HTTP status, a title, the RFC
 * 9457 problem `type` URI and, where the cause maps onto one, the OAuth
 * error (RFC 6749 §5.2, RFC 6750 §3.1, RFC 8693 §2.2.2). Every other
 * error (bad configuration, a parser's refusal, an upstream's failure)
 * extends `BatonError` directly, and the edge that answers for it maps its
 * code to the `HttpError` of that code, by a table, never by its message.
 *
 * Every code is documented in docs/errors.md under a heading that is the
 * code itself, so its anchor is the code in lower case; the problem `type`
 * (RFC 9457 §3.1.1) and the STS's `error_uri` (RFC 6749 §5.2) are that
 * anchor's URL in the docs of this release. test/core/error-catalogue.test.ts
 * holds the two together, and holds each removed code to its alias.
 *
 * This file also holds the causes shared by every part (not ready, no such
 * route, bad request, internal error), so that each has one code.
 */
import { BATON_VERSION } from './version.ts';

/**
 * docs/errors.md in the repository named by package.json `repository`, at
 * the tag of this release: a problem `type` keeps meaning what it meant
 * when it was sent, whatever the catalogue says later.
 */
export const ERROR_CATALOGUE_URL = `https://github.com/baton-dev/baton-mesh/blob/v${BATON_VERSION}/docs/errors.md`;

export interface BatonErrorOptions {
  readonly cause?: unknown;
  /** The sub-cause within the code: stable, lower-case words, or the sub-cause's own code. */
  readonly reason?: string | undefined;
}

/** The one base: a stable code, the message, and the sub-cause. */
export class BatonError extends Error {
  /** Stable machine code, e.g. `BATON_TOKEN_EXPIRED`, documented in docs/errors.md. */
  readonly code: string;
  readonly reason: string | undefined;

  constructor(code: string, message: string, options: BatonErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = code;
    this.code = code;
    this.reason = options.reason;
  }
}

export function isBatonError(value: unknown): value is BatonError {
  return value instanceof BatonError;
}

export interface ErrorSpec {
  /** Stable machine code, e.g. `BATON_TOKEN_EXPIRED`. */
  readonly code: string;
  readonly status: number;
  /** Short, human summary of the problem type (RFC 9457 §3.1.3). */
  readonly title: string;
  /** OAuth error code when the cause has one. */
  readonly oauthError?: string;
}

export interface ErrorOptions extends BatonErrorOptions {
  /** Extension members for the problem document (never secrets). */
  readonly extensions?: Readonly<Record<string, unknown>>;
}

/** The anchor of a code in docs/errors.md: GitHub's heading slug of the code, i.e. the code in lower case. */
export function errorAnchor(code: string): string {
  return code.toLowerCase();
}

/** The problem `type` and `error_uri` of a code: its section of docs/errors.md. */
export function problemType(code: string): string {
  return `${ERROR_CATALOGUE_URL}#${errorAnchor(code)}`;
}

/** An error answered over HTTP: a problem document (RFC 9457), or at the STS token endpoint an RFC 6749 §5.2 error. */
export class HttpError extends BatonError {
  readonly status: number;
  readonly title: string;
  readonly type: string;
  readonly oauthError: string | undefined;
  readonly extensions: Readonly<Record<string, unknown>>;

  constructor(spec: ErrorSpec, detail: string, options: ErrorOptions = {}) {
    super(spec.code, detail, options);
    this.status = spec.status;
    this.title = spec.title;
    this.type = problemType(spec.code);
    this.oauthError = spec.oauthError;
    this.extensions = options.extensions ?? {};
  }
}

export type HttpErrorClass = {
  new (detail: string, options?: ErrorOptions): HttpError;
  readonly code: string;
};

// Static data filled as modules load, like the classes themselves; nothing reads it on a request path.
const defined = new Map<string, ErrorSpec>();

/**
 * Defines one error class per code, in the manner of @fastify/error, and
 * records its spec. A code defined twice is a programming error that would
 * give one code two meanings, so it fails at import, where every test sees it.
 */
export function defineError(spec: ErrorSpec): HttpErrorClass {
  if (defined.has(spec.code)) throw new TypeError(`defineError: ${spec.code} is already defined; one code, one cause`);
  if (!/^BATON_[A-Z0-9]+(?:_[A-Z0-9]+)*$/.test(spec.code))
    throw new TypeError(`defineError: expected a code like BATON_SOME_CAUSE, got ${spec.code}`);
  defined.set(spec.code, Object.freeze({ ...spec }));
  const Defined = class extends HttpError {
    static readonly code = spec.code;
    constructor(detail: string, options?: ErrorOptions) {
      super(spec, detail, options);
    }
  };
  Object.defineProperty(Defined, 'name', { value: spec.code });
  return Defined;
}

/** Every spec defined so far, in definition order; the catalogue test imports every errors module first. */
export function definedErrors(): readonly ErrorSpec[] {
  return [...defined.values()];
}

export function isHttpError(value: unknown): value is HttpError {
  return value instanceof HttpError;
}

/**
 * A part that cannot serve yet, or no longer: no policy (reason `policy`), no
 * valid workload certificate (`identity`), or shutting down. RFC 6749 §5.2
 * temporarily_unavailable at the STS token endpoint.
 */
export const NotReadyError = defineError({
  code: 'BATON_NOT_READY',
  status: 503,
  title: 'Not ready',
  oauthError: 'temporarily_unavailable',
});
/** Too many requests in flight (the sidecar's limit per port), or long polls held (the policy server's, reason `long-polls`). */
export const OverloadedError = defineError({
  code: 'BATON_OVERLOADED',
  status: 503,
  title: 'Too many requests in flight',
});
/** A service name that is not a DNS-1123 label, where a validated one is required (src/core/service-name.ts). */
export const ServiceNameInvalidError = defineError({
  code: 'BATON_SERVICE_NAME_INVALID',
  status: 400,
  title: 'Invalid service name',
});
/** The request names no route the server has. */
export const NotFoundError = defineError({ code: 'BATON_NOT_FOUND', status: 404, title: 'No such resource' });
/**
 * The request could not be read: malformed syntax, parameters or body. At
 * the STS token endpoint (RFC 6749 §5.2 invalid_request) the reason names
 * which: `missing-parameter`, `duplicate-parameter`, `unsupported-token-type`,
 * `not-form-encoded`, `unreadable-body`, `several-auth-methods`.
 */
export const BadRequestError = defineError({
  code: 'BATON_BAD_REQUEST',
  status: 400,
  title: 'Bad request',
  oauthError: 'invalid_request',
});
/** The request's method is not one the route takes: a CONNECT tunnel at the sidecar (reason `connect`), anything but POST at the STS token endpoint (RFC 6749 §3.2). */
export const MethodNotAllowedError = defineError({
  code: 'BATON_METHOD_NOT_ALLOWED',
  status: 405,
  title: 'Method not allowed',
  oauthError: 'invalid_request',
});
/** The request body is larger than the server accepts. */
export const RequestBodyTooLargeError = defineError({
  code: 'BATON_REQUEST_BODY_TOO_LARGE',
  status: 413,
  title: 'Request body too large',
});
/** The request body is of a media type the route does not take. */
export const UnsupportedMediaTypeError = defineError({
  code: 'BATON_UNSUPPORTED_MEDIA_TYPE',
  status: 415,
  title: 'Unsupported media type',
});
/** Anything unforeseen, a bug (reason `rule-id`: a rule id minted from a name validation should have refused); the detail never echoes the underlying message, which could hold a token. */
export const InternalError = defineError({
  code: 'BATON_INTERNAL',
  status: 500,
  title: 'Internal error',
  oauthError: 'server_error',
});
