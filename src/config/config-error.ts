/**
 * The one error type for bad configuration. It names where the value came
 * from (file or environment variable), the key, and what was expected, so
 * that the process can stop with one clear line.
 */
export class ConfigError extends Error {
  readonly code = 'BATON_CONFIG_INVALID';
  readonly source: string;
  readonly key: string;
  readonly expected: string;

  constructor(source: string, key: string, expected: string, seen?: string) {
    super(`${source}: ${key || '(root)'}: expected ${expected}${seen === undefined ? '' : `, got ${seen}`}`);
    this.name = 'ConfigError';
    this.source = source;
    this.key = key;
    this.expected = expected;
  }
}
