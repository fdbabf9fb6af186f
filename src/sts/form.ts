/**
 * Token request parameters from an `application/x-www-form-urlencoded`
 * body (RFC 6749 §3.2, Appendix B).
 */
import { BadRequestError } from '../core/errors.ts';

// RFC 8693 §2.1 allows several `audience` and `resource` values; RFC 8707 §2 too.
const REPEATABLE = new Set(['audience', 'resource']);

export interface TokenRequestParams {
  /** The single value of a parameter; empty values count as absent (RFC 6749 §3.1). */
  get(name: string): string | undefined;
  /** Every value of a repeatable parameter. */
  all(name: string): readonly string[];
  has(name: string): boolean;
}

export function parseTokenRequestForm(body: string): TokenRequestParams {
  const values = new Map<string, string[]>();
  for (const [name, value] of new URLSearchParams(body)) {
    if (value === '') continue;
    const list = values.get(name);
    if (list === undefined) {
      values.set(name, [value]);
    } else if (REPEATABLE.has(name)) {
      list.push(value);
    } else {
      // RFC 6749 §3.2: request and response parameters MUST NOT be included more than once.
      throw new BadRequestError(`expected the parameter ${safeName(name)} at most once, got it more than once`, {
        reason: 'duplicate-parameter',
      });
    }
  }
  return {
    get: (name) => values.get(name)?.[0],
    all: (name) => values.get(name) ?? [],
    has: (name) => values.has(name),
  };
}

// A parameter name is attacker-chosen text: bound it before it reaches a message.
function safeName(name: string): string {
  return /^[a-z_]{1,40}$/.test(name) ? name : '(unrecognised)';
}
