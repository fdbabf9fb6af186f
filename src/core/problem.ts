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
