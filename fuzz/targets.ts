/**
 * Fuzz targets: the parsers that read attacker- or operator-supplied text
 * before anything is trusted. A target passes an input when it returns or
 * throws one of its own typed errors; anything else (a TypeError, a
 * RangeError from the stack, a hang) is a finding.
 */
import { isTokenError } from '../src/token/errors.ts';
import { preparseToken } from '../src/token/preparse.ts';
import { parsePolicy } from '../src/policy/language/parse.ts';
import { compilePolicy } from '../src/policy/language/compile.ts';
import { DEFAULT_ALGORITHMS } from '../src/token/verifier.ts';

export interface FuzzTarget {
  readonly name: string;
  /** Throws only when the input reveals a bug. */
  run(input: string): void;
}

const algorithms = new Set(DEFAULT_ALGORITHMS);

export const tokenTarget: FuzzTarget = {
  name: 'token',
  run(input) {
    try {
      const { header, payload } = preparseToken(input, { maxTokenBytes: 8192, algorithms });
      // Whatever passes the pre-parser must be what the checks promised.
      if (typeof header.alg !== 'string' || !algorithms.has(header.alg))
        throw new Error('preparse let through an alg outside the allow-list');
      if ('crit' in header || 'b64' in header) throw new Error('preparse let through crit or b64');
      if (typeof payload !== 'object' || payload === null || Array.isArray(payload))
        throw new Error('preparse returned a non-object claims set');
    } catch (error) {
      if (!isTokenError(error)) throw error;
    }
  },
};

export const policyTarget: FuzzTarget = {
  name: 'policy',
  run(input) {
    const { policy, problems } = parsePolicy(input, 'fuzz.yaml');
    if (policy === undefined) {
      if (problems.length === 0) throw new Error('parsePolicy refused a policy without saying why');
      return;
    }
    // A policy the parser accepts must compile and answer.
    const compiled = compilePolicy(policy);
    compiled.decide({ chain: [], target: 'x', scopes: new Set(), user: true });
  },
};

export const TARGETS: readonly FuzzTarget[] = [tokenTarget, policyTarget];
