import type { HttpError } from './errors.ts';

/** RFC 9457 problem details document. */
export interface ProblemDocument {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
  readonly code: string;
  readonly [extension: string]: unknown;
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** The problem document of an error: RFC 9457's members, baton's `code`, the `reason` when the cause names one, and the error's extensions. */
export function toProblem(error: HttpError, instance?: string): ProblemDocument {
  return {
    ...error.extensions,
    type: error.type,
    title: error.title,
    status: error.status,
    detail: error.message,
    code: error.code,
    ...(error.reason === undefined ? {} : { reason: error.reason }),
    ...(instance === undefined ? {} : { instance }),
  };
}

/**
 * Seconds a client should wait before trying again (RFC 9110 §10.2.3 for
 * 503, RFC 6585 §4 for 429): what the cause knows (`retryAfter`, e.g. when
 * a throttle's budget refills), else 1. Undefined for other statuses.
 */
export function retryAfterFor(error: HttpError): number | undefined {
  if (error.status !== 429 && error.status !== 503) return undefined;
  const known = error.extensions.retryAfter;
  return typeof known === 'number' && Number.isInteger(known) && known > 0 ? known : 1;
}
