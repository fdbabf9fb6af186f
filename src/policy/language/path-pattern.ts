/**
 * Path patterns of accepts rules: literal segments, `*` for exactly one
 * non-empty segment, and a trailing `**` for zero or more segments.
 *
 * Matching is on the request path (query string cut off), each segment
 * percent-decoded once, and normalises nothing else, because the sidecar
 * and the app behind it may normalise differently: what the policy allows
 * must be what the app sees. So a path that any common normalisation could
 * turn into a different one never matches at all (./request-path.ts lists
 * the classes: dot segments in every spelling, path parameters, double
 * encoding, NUL and controls, invalid or overlong UTF-8, Unicode
 * lookalikes, encoded slashes, backslashes, empty segments). The sidecar
 * refuses the worst of them with 400 before asking the policy. This is
 * stricter than Envoy's default and equivalent to its `REJECT_REQUEST` for
 * escaped slashes.
 */
import { readRequestPath, readSegment } from './request-path.ts';

export interface PathMatcher {
  readonly pattern: string;
  matches(path: string): boolean;
}

const ANY_SEGMENT = '*';
const ANY_SUFFIX = '**';

// RFC 3986 §3.3 pchar: unreserved / pct-encoded / sub-delims / ":" / "@".
const PCHAR_SEGMENT = /^(?:[A-Za-z0-9\-._~!$&'()+,;=:@]|%[0-9A-Fa-f]{2})+$/;
const DOT_SEGMENT = /^(?:\.|%2e){1,2}$/i;
const ENCODED_SEPARATOR = /%2f|%5c/i;

/** Why a pattern is unusable, or undefined when it is fine. `offset` points into the pattern. */
export function checkPathPattern(pattern: string): { message: string; offset: number } | undefined {
  if (!pattern.startsWith('/'))
    return { message: `expected a path pattern starting with '/', got '${pattern}'`, offset: 0 };
  const segments = pattern.slice(1).split('/');
  let offset = 1;
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] as string;
    const last = i === segments.length - 1;
    if (segment === ANY_SUFFIX) {
      if (!last) return { message: `expected '**' only as the last segment, got it at offset ${offset}`, offset };
    } else if (segment === ANY_SEGMENT) {
      // one whole segment: fine anywhere
    } else if (segment === '') {
      if (!last)
        return { message: `expected no empty segment ('//') in a path pattern, got one at offset ${offset}`, offset };
    } else if (segment.includes('*')) {
      return { message: `expected '*' or '**' to be a whole segment, got '${segment}' at offset ${offset}`, offset };
    } else if (DOT_SEGMENT.test(segment)) {
      return { message: `expected no '.' or '..' segment, got '${segment}' at offset ${offset}`, offset };
    } else if (ENCODED_SEPARATOR.test(segment)) {
      return { message: `expected no encoded '/' or '\\' (%2F, %5C), got '${segment}' at offset ${offset}`, offset };
    } else if (!PCHAR_SEGMENT.test(segment)) {
      return {
        message: `expected a segment of RFC 3986 path characters, got '${segment}' at offset ${offset}`,
        offset,
      };
    } else if (typeof readSegment(segment) !== 'string') {
      // A request segment of this spelling could never match (./request-path.ts), so neither can the pattern.
      return {
        message: `expected a segment that means the same under every path normalisation (no ';' parameters, '%25', controls or lookalikes), got '${segment}' at offset ${offset}`,
        offset,
      };
    }
    offset += segment.length + 1;
  }
  return undefined;
}

/** Splits a raw request path into decoded segments, or undefined when it must match nothing (see the module comment). */
export function requestPathSegments(rawPath: string): readonly string[] | undefined {
  const query = rawPath.indexOf('?');
  const path = query === -1 ? rawPath : rawPath.slice(0, query);
  if (path.includes('#')) return undefined;
  return readRequestPath(path).segments;
}

export type SegmentMatcher = (segments: readonly string[]) => boolean;

function compileSegments(pattern: string): SegmentMatcher {
  const problem = checkPathPattern(pattern);
  if (problem !== undefined) throw new TypeError(problem.message);
  const all = pattern.slice(1).split('/');
  const suffix = all[all.length - 1] === ANY_SUFFIX;
  // Literal segments compared decoded, as request segments are: `/a%20b` and `/a b` are one path.
  const fixed = (suffix ? all.slice(0, -1) : all).map((segment) =>
    segment === ANY_SEGMENT ? segment : (readSegment(segment) as string),
  );
  return (segments) => {
    if (suffix ? segments.length < fixed.length : segments.length !== fixed.length) return false;
    for (let i = 0; i < fixed.length; i++) {
      const want = fixed[i] as string;
      const got = segments[i] as string;
      if (want === ANY_SEGMENT ? got === '' : want !== got) return false;
    }
    return true;
  };
}

/** Compiles a pattern accepted by `checkPathPattern` (throws TypeError otherwise). */
export function compilePathPattern(pattern: string): PathMatcher {
  const matchesSegments = compileSegments(pattern);
  return {
    pattern,
    matches(path: string): boolean {
      const segments = requestPathSegments(path);
      return segments !== undefined && matchesSegments(segments);
    },
  };
}

/** One matcher for a rule's pattern list over decoded segments (`readRequestPath`). */
export function compileSegmentPatterns(patterns: readonly string[]): SegmentMatcher {
  const matchers = patterns.map(compileSegments);
  return (segments) => {
    for (const matcher of matchers) if (matcher(segments)) return true;
    return false;
  };
}

/** One matcher for a rule's pattern list: the path is split once, then each pattern is tried. */
export function compilePathPatterns(patterns: readonly string[]): (path: string) => boolean {
  const matches = compileSegmentPatterns(patterns);
  return (path) => {
    const segments = requestPathSegments(path);
    return segments !== undefined && matches(segments);
  };
}

/** True when every path `inner` matches is also matched by `outer` (both valid patterns). */
export function pathPatternCovers(outer: string, inner: string): boolean {
  const a = outer.slice(1).split('/');
  const b = inner.slice(1).split('/');
  const aSuffix = a[a.length - 1] === ANY_SUFFIX;
  const bSuffix = b[b.length - 1] === ANY_SUFFIX;
  const aFixed = aSuffix ? a.slice(0, -1) : a;
  const bFixed = bSuffix ? b.slice(0, -1) : b;
  if (aSuffix ? bFixed.length < aFixed.length : bSuffix || bFixed.length !== aFixed.length) return false;
  for (let i = 0; i < aFixed.length; i++) {
    const want = aFixed[i] as string;
    const got = bFixed[i] as string;
    if (want === ANY_SEGMENT ? got === '' : got === ANY_SEGMENT || readSegment(want) !== readSegment(got)) return false;
  }
  return true;
}
