/**
 * A request path as the policy reads it: split into segments, each
 * percent-decoded once, or refused as ambiguous.
 *
 * The sidecar and the app behind it may normalise a path differently:
 * Tomcat, Jetty and Spring strip `;params` from each segment and then
 * resolve `..`; some servers decode twice, map `\` to `/`, merge `//`, or
 * fold Unicode (NFKC) so that a fullwidth dot becomes `.`. A path is
 * therefore matched only when every such normalisation leaves its meaning
 * unchanged. Anything else is ambiguous, in one of these classes:
 *
 * | class                  | example                               | action    |
 * | ---------------------- | ------------------------------------- | --------- |
 * | `dot-segment`          | `/a/../b`, `/a/%2e%2e/b`, `/a/..;x/b`, `/a/%EF%BC%8E%EF%BC%8E/b` | refuse    |
 * | `backslash`            | `/a\b`, `/a%5Cb`, fullwidth `%EF%BC%BC` | refuse    |
 * | `double-encoding`      | `/a/%252e%252e/b`                     | refuse    |
 * | `control-character`    | `/a%00.json`, `%0A`, `%7F`            | refuse    |
 * | `invalid-encoding`     | overlong `%C0%AE`, `%ED%A0%80`, `%FF`, `%zz` | refuse |
 * | `raw-non-ascii`        | bytes above 0x7F unencoded (sidecar only, see `checkRawRequestTarget`) | refuse |
 * | `path-parameter`       | `/orders/1;jsessionid=x`, `%3B`       | no match  |
 * | `encoded-slash`        | `/a%2Fb`, fullwidth solidus           | no match  |
 * | `empty-segment`        | `/a//b` (a trailing `/` is fine)      | no match  |
 * | `literal-percent`      | `/a/100%25` (`%25` not before two hex digits) | no match |
 * | `unicode-compatibility`| `/a/%EF%BC%A1` (NFKC would change it) | no match  |
 *
 * "Refuse": no client has a reason to send it, so the sidecar answers 400
 * before the policy is asked. "No match": it may be legitimate somewhere,
 * so it is only kept from matching any `paths` pattern (403 where a rule
 * lists paths; allowed where a rule allows every path).
 *
 * Path patterns of accepts rules: literal segments, `*` for exactly one
 * non-empty segment, and a trailing `**` for zero or more segments.
 * Matching is on the request path (query string cut off), each segment
 * percent-decoded once, and normalises nothing else: what the policy
 * allows must be what the app sees. So a path in any class above never
 * matches at all. This is stricter than Envoy's default and equivalent to
 * its `REJECT_REQUEST` for escaped slashes.
 */

export type AmbiguousPathClass =
  | 'dot-segment'
  | 'backslash'
  | 'double-encoding'
  | 'control-character'
  | 'invalid-encoding'
  | 'raw-non-ascii'
  | 'path-parameter'
  | 'encoded-slash'
  | 'empty-segment'
  | 'literal-percent'
  | 'unicode-compatibility';

export const AMBIGUOUS_PATH_ACTION: Readonly<Record<AmbiguousPathClass, 'refuse' | 'no-match'>> = {
  'dot-segment': 'refuse',
  backslash: 'refuse',
  'double-encoding': 'refuse',
  'control-character': 'refuse',
  'invalid-encoding': 'refuse',
  'raw-non-ascii': 'refuse',
  'path-parameter': 'no-match',
  'encoded-slash': 'no-match',
  'empty-segment': 'no-match',
  'literal-percent': 'no-match',
  'unicode-compatibility': 'no-match',
};

/** Why one segment is ambiguous; one frozen object per class, so reading a path allocates nothing for it. */
export interface AmbiguousSegment {
  readonly ambiguous: AmbiguousPathClass;
}

const AMBIGUOUS: Readonly<Record<AmbiguousPathClass, AmbiguousSegment>> = Object.freeze(
  Object.fromEntries(
    Object.keys(AMBIGUOUS_PATH_ACTION).map((c) => [c, Object.freeze({ ambiguous: c as AmbiguousPathClass })]),
  ) as Record<AmbiguousPathClass, AmbiguousSegment>,
);

export type RequestPath =
  | { readonly segments: readonly string[]; readonly ambiguous?: undefined }
  | { readonly segments?: undefined; readonly ambiguous: AmbiguousPathClass };

/** Characters that send a segment down the slow path: `%`, `;`, `\`, controls, and anything beyond ASCII. */
// eslint-disable-next-line no-control-regex
const NEEDS_CARE = /[%;\\\u0000-\u001f\u007f-\uffff]/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const HEX_PAIR_AFTER_PERCENT = /%[0-9A-Fa-f]{2}/;

/**
 * The decoded segments of an origin-form path (no query), or the class that
 * makes it ambiguous. Refusing classes win over no-match classes, so the
 * sidecar's 400 does not depend on which segment comes first.
 */
export function readRequestPath(path: string): RequestPath {
  if (path.length === 0 || path.charCodeAt(0) !== 0x2f) return AMBIGUOUS['invalid-encoding'];
  const raw = path.slice(1).split('/');
  const segments: string[] = new Array<string>(raw.length);
  let noMatch: AmbiguousPathClass | undefined;
  for (let i = 0; i < raw.length; i++) {
    const segment = raw[i] as string;
    const read = readSegment(segment);
    if (typeof read !== 'string') {
      if (AMBIGUOUS_PATH_ACTION[read.ambiguous] === 'refuse') return read;
      noMatch ??= read.ambiguous;
      continue;
    }
    if (read === '' && i !== raw.length - 1) noMatch ??= 'empty-segment';
    segments[i] = read;
  }
  return noMatch === undefined ? { segments } : AMBIGUOUS[noMatch];
}

/** One raw segment, decoded once, or why it is ambiguous. Also used on literal pattern segments. */
function readSegment(segment: string): string | AmbiguousSegment {
  if (!NEEDS_CARE.test(segment)) return isDotSegment(segment) ? AMBIGUOUS['dot-segment'] : segment;
  if (segment.includes('\\')) return AMBIGUOUS['backslash'];
  let decoded: string;
  try {
    decoded = segment.includes('%') ? decodeURIComponent(segment) : segment;
  } catch {
    // Malformed or non-shortest (overlong) UTF-8, lone surrogates, `%` without two hex digits.
    return AMBIGUOUS['invalid-encoding'];
  }
  if (CONTROL.test(decoded)) return AMBIGUOUS['control-character'];
  // What an app server that folds Unicode would see; a lookalike dot, slash or backslash is an attack.
  const folded = decoded.normalize('NFKC');
  if (folded.includes('\\')) return AMBIGUOUS['backslash'];
  if (decoded.includes('%'))
    return HEX_PAIR_AFTER_PERCENT.test(decoded) ? AMBIGUOUS['double-encoding'] : AMBIGUOUS['literal-percent'];
  // Tomcat, Jetty and Spring strip `;params` per segment, then resolve dot segments.
  const semicolon = folded.indexOf(';');
  const head = semicolon === -1 ? folded : folded.slice(0, semicolon);
  if (isDotSegment(head)) return AMBIGUOUS['dot-segment'];
  if (folded.includes('/')) return AMBIGUOUS['encoded-slash'];
  if (semicolon !== -1) return AMBIGUOUS['path-parameter'];
  if (folded !== decoded) return AMBIGUOUS['unicode-compatibility'];
  return decoded;
}

function isDotSegment(segment: string): boolean {
  return segment === '.' || segment === '..';
}

// --- path patterns ---

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
      // A request segment of this spelling could never match (`readSegment`), so neither can the pattern.
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
function requestPathSegments(rawPath: string): readonly string[] | undefined {
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
