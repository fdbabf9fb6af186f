import type { BatonError } from './errors.ts';

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

export function toProblem(error: BatonError, instance?: string): ProblemDocument {
  return {
    ...error.extensions,
    type: error.type,
    title: error.title,
    status: error.status,
    detail: error.message,
    code: error.code,
    ...(instance === undefined ? {} : { instance }),
  };
}

/**
 * Seconds a client should wait before trying again (RFC 9110 §10.2.3 for
 * 503, RFC 6585 §4 for 429): what the cause knows (`retryAfter`, e.g. when
 * a throttle's budget refills), else 1. Undefined for other statuses.
 */
export function retryAfterFor(error: BatonError): number | undefined {
  if (error.status !== 429 && error.status !== 503) return undefined;
  const known = error.extensions.retryAfter;
  return typeof known === 'number' && Number.isInteger(known) && known > 0 ? known : 1;
}
