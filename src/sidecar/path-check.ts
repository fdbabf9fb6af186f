/**
 * The request paths the sidecar refuses with 400 before the policy is asked:
 * those whose meaning depends on how the app's server normalises them (a
 * dot segment in any spelling, a backslash, double encoding, NUL and
 * controls, invalid or overlong UTF-8, raw bytes beyond ASCII). The milder
 * classes only never match a `paths` pattern (src/policy/language/request-path.ts).
 */
import { AMBIGUOUS_PATH_ACTION, type AmbiguousPathClass, readRequestPath } from '../policy/language/request-path.ts';
import { AmbiguousPathError } from './errors.ts';

// RFC 3986 §2: a request target is ASCII; servers disagree on what raw bytes above 0x7F mean.
const RAW_NON_ASCII = /[^\x21-\x7e]/;

/** Throws AmbiguousPathError (400) for a path (no query) of a refused class. */
export function refuseAmbiguousPath(path: string): void {
  let refused: AmbiguousPathClass | undefined;
  if (RAW_NON_ASCII.test(path)) refused = 'raw-non-ascii';
  else {
    const read = readRequestPath(path);
    if (read.ambiguous !== undefined && AMBIGUOUS_PATH_ACTION[read.ambiguous] === 'refuse') refused = read.ambiguous;
  }
  if (refused !== undefined) {
    throw new AmbiguousPathError(`expected a path that means the same under every normalisation, got one in the class '${refused}'`, { extensions: { pathClass: refused } });
  }
}
