/**
 * The property behind src/policy/language/paths.ts: whatever an app server
 * does to a path before routing it (strip `;params`, percent-decode once or
 * twice, resolve dot segments, fold Unicode with NFKC, read `\` as `/`,
 * merge `//`), a path the policy allows raw is still allowed after it. Put
 * the other way: if a normalisation maps a path to one a rule does not
 * allow, the rule does not allow the raw path either.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { checkPathPattern, compileSegmentPatterns, readRequestPath } from '../../src/policy/language/paths.ts';

type Normalisation = (path: string) => string;

/** Percent-decoding as a lenient server does it: bytes as UTF-8, bad sequences as U+FFFD, a stray `%` kept. */
function decodeOnce(path: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < path.length; i++) {
    if (path[i] === '%' && /^[0-9A-Fa-f]{2}$/.test(path.slice(i + 1, i + 3))) {
      bytes.push(parseInt(path.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(path[i] as string, 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** RFC 3986 §5.2.4 remove_dot_segments. */
function resolveDots(path: string): string {
  const out: string[] = [];
  const segments = path.split('/').slice(1);
  segments.forEach((segment, i) => {
    const last = i === segments.length - 1;
    if (segment === '.') {
      if (last) out.push('');
    } else if (segment === '..') {
      out.pop();
      if (last) out.push('');
    } else out.push(segment);
  });
  return `/${out.join('/')}`;
}

const NORMALISATIONS: Readonly<Record<string, Normalisation>> = {
  stripParams: (p) =>
    p
      .split('/')
      .map((s) => s.split(';', 1)[0] as string)
      .join('/'),
  decodeOnce,
  resolveDots,
  nfkc: (p) => p.normalize('NFKC'),
  backslashAsSlash: (p) => p.replaceAll('\\', '/'),
  mergeSlashes: (p) => p.replace(/\/{2,}/g, '/'),
};

const SEGMENTS = [
  'orders',
  'a',
  'b',
  'admin',
  '1',
  '',
  '.',
  '..',
  '%2e',
  '%2E%2e',
  '..;',
  '.;',
  '%2e%2e;x',
  ';x',
  'x;y',
  'a%3Bb',
  '%3b',
  '%25',
  '%252e',
  '%252e%252e',
  '%2F',
  '%2f',
  '%5C',
  '\\',
  '%00',
  '%0a',
  '%C0%AE',
  '%E0%80%AE',
  '%C3%A9',
  'caf%C3%A9',
  'é',
  '%EF%BC%8E',
  '．',
  '%E2%80%A5',
  '%EF%BC%A1',
  'Ａ',
  '%41',
  '%20',
  'a%20b',
  '%3F',
  '%23',
  '%zz',
  '%',
  '~',
  "a'b",
  '%EF%BC%8F',
  '%EF%BC%BC',
  '..%2f',
  '%2e%2e%5c',
];
const PATTERNS = [
  '/orders',
  '/orders/*',
  '/orders/**',
  '/orders/a',
  '/orders/*/b',
  '/**',
  '/*',
  '/a/b',
  '/orders/caf%C3%A9',
  '/orders/a%20b',
  '/orders/%41',
  '/admin/**',
  '/orders/1/',
];

const allows = (match: (segments: readonly string[]) => boolean, path: string): boolean => {
  const read = readRequestPath(path);
  return read.segments !== undefined && match(read.segments);
};

describe('request path properties', () => {
  it('uses only patterns the policy validator accepts', () => {
    for (const pattern of PATTERNS) assert.equal(checkPathPattern(pattern), undefined, pattern);
  });

  it('allows a raw path only when every common normalisation of it is allowed by the same rule', () => {
    const path = fc
      .array(fc.constantFrom(...SEGMENTS), { minLength: 1, maxLength: 5 })
      .map((segments) => `/${segments.join('/')}`);
    const rule = fc.uniqueArray(fc.constantFrom(...PATTERNS), { minLength: 1, maxLength: 3 });
    const normalisations = fc.array(fc.constantFrom(...Object.keys(NORMALISATIONS)), { minLength: 1, maxLength: 4 });
    fc.assert(
      fc.property(path, rule, normalisations, (raw, patterns, steps) => {
        const match = compileSegmentPatterns(patterns);
        if (!allows(match, raw)) return;
        const normalised = steps.reduce((p, step) => (NORMALISATIONS[step] as Normalisation)(p), raw);
        assert.ok(
          allows(match, normalised),
          `rule ${JSON.stringify(patterns)} allows ${JSON.stringify(raw)} but not ${JSON.stringify(normalised)} (${steps.join(' → ')})`,
        );
      }),
      { numRuns: 20_000 },
    );
  });

  it('is not vacuous: some generated paths are allowed, and the attack examples are not', () => {
    const match = compileSegmentPatterns(['/orders/**']);
    assert.equal(allows(match, '/orders/1/a%20b'), true);
    for (const attack of [
      '/orders/..;/admin',
      '/orders/%2e%2e;/admin',
      '/orders/.;/admin',
      '/orders/%252e%252e/admin',
      '/orders/%00',
      '/orders/%C0%AE%C0%AE/admin',
      '/orders/%EF%BC%8E%EF%BC%8E/admin',
      '/orders\\..\\admin',
    ]) {
      assert.equal(allows(match, attack), false, attack);
    }
  });
});
