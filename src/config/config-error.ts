/**
 * The one error type for bad configuration, BATON_CONFIG_INVALID. It names
 * where the value came from (file or environment variable), the key, and
 * what was expected, so that the process can stop with one clear line. The
 * operator edits the configuration whatever went wrong; two causes get a
 * class and a reason of their own so the line can say more: a key the
 * schema does not know (`unknown-key`, usually a typo, so the closest known
 * key is suggested) and a required key that is missing (`missing-key`).
 */
import { BatonError } from '../core/errors.ts';

export class ConfigError extends BatonError {
  readonly source: string;
  readonly key: string;
  readonly expected: string;

  constructor(source: string, key: string, expected: string, seen?: string, reason?: string) {
    super(
      'BATON_CONFIG_INVALID',
      `${source}: ${key || '(root)'}: expected ${expected}${seen === undefined ? '' : `, got ${seen}`}`,
      { reason },
    );
    this.name = 'ConfigError';
    this.source = source;
    this.key = key;
    this.expected = expected;
  }
}

/** A key the schema does not know: `sts.clientSecrte`. */
export class ConfigUnknownKeyError extends ConfigError {
  /** The closest known key at the same level, when one is close enough to be a typo. */
  readonly suggestion: string | undefined;

  constructor(source: string, key: string, known: readonly string[], suggestion: string | undefined) {
    super(source, key, `one of the known keys (${known.join(', ')})`, undefined, 'unknown-key');
    this.name = 'ConfigUnknownKeyError';
    this.suggestion = suggestion;
    const parent = key.includes('.') ? `${key.slice(0, key.lastIndexOf('.'))}.` : '';
    this.message = `${source}: ${key}: unknown key${suggestion === undefined ? `; known keys here: ${known.join(', ')}` : `; did you mean '${parent}${suggestion}'?`}`;
  }
}

/**
 * A `BATON_*` environment variable that no part of baton reads: the
 * environment's unknown key, usually misspelt (`BATON_STS__ISUER`), refused
 * like one in the file rather than ignored (src/config/variables.ts).
 */
export class ConfigUnknownVariableError extends ConfigUnknownKeyError {
  readonly variable: string;

  /** `readBy`: the parts that read the suggestion, when it is another part's variable. */
  constructor(variable: string, suggestion: string | undefined, readBy?: string) {
    super(`environment variable ${variable}`, '', [], suggestion);
    this.name = 'ConfigUnknownVariableError';
    this.variable = variable;
    const hint =
      suggestion === undefined
        ? "unset it, or fix its name: the part's --help lists every key with its variable"
        : `did you mean ${suggestion}${readBy === undefined ? '' : ` (read by ${readBy})`}?`;
    this.message = `environment variable ${variable}: no baton setting has this name; ${hint}`;
  }
}

/** A required key with no value from the file, the environment or a flag. */
export class ConfigMissingKeyError extends ConfigError {
  constructor(source: string, key: string, expected: string, environmentVariable: string) {
    super(source, key, expected, undefined, 'missing-key');
    this.name = 'ConfigMissingKeyError';
    this.message = `${source}: ${key}: missing (expected ${expected}; set it in the file or as ${environmentVariable})`;
  }
}
