/**
 * The error catalogue (docs/errors.md) and the code hold together: every
 * code is defined once, documented once under its own anchor, and every
 * problem `type` and `error_uri` baton writes points at that anchor. Adding
 * a code anywhere in src/ without its section here fails this file, and so
 * does removing one without its alias: a row of "Removed codes" naming the
 * code it became and the reason that tells it apart, an anchor that old
 * problem types still land on, and a line of the CHANGELOG.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import {
  ERROR_CATALOGUE_URL,
  HttpError,
  defineError,
  definedErrors,
  errorAnchor,
  problemType,
} from '../../src/core/errors.ts';
import { TOKEN_ENDPOINT_ANSWERS, toOAuthError } from '../../src/sts/errors.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const SRC = join(ROOT, 'src');
const CATALOGUE = readFileSync(join(ROOT, 'docs', 'errors.md'), 'utf8');
const CHANGELOG = readFileSync(join(ROOT, 'CHANGELOG.md'), 'utf8');

/**
 * The catalogue as issue #25 found it (119 codes), before the codes an
 * operator acts on the same way were merged. Each is documented now or is a
 * removed code with its alias. When a release drops its aliases, this
 * becomes that release's catalogue.
 */
const CODES_BEFORE_25: readonly string[] = `
ACT_MALFORMED ACT_TOO_DEEP ADMISSION_REVIEW_INVALID AMBIGUOUS_PATH AUDIT_BAD_SINCE AUDIT_INPUT_UNREADABLE AUDIT_LOG_UNREADABLE BAD_REQUEST
CONFIG_INVALID CONFIG_MISSING_KEY CONFIG_UNKNOWN_KEY EXCHANGED_TOKEN_EXPIRED EXCHANGE_REFUSED FAIR_SHARE_EXCEEDED GRAPHVIZ_UNAVAILABLE
IDENTITY_EXPIRED IDENTITY_ID_CHANGED IDENTITY_INVALID IDENTITY_MISSING IDENTITY_PEER_MISMATCH IDENTITY_PEER_NOT_WORKLOAD IDENTITY_SPIFFE_ID_INVALID
IDENTITY_UNAVAILABLE IDENTITY_UNMAPPED IDENTITY_UNTRUSTED INTERNAL KEYGEN_FILE_EXISTS METHOD_NOT_ALLOWED NOT_FOUND NOT_READY OVERLOADED
PEER_NOT_WORKLOAD PEER_UNMAPPED POLICY_DENIED POLICY_DIGEST_MISMATCH POLICY_DOCUMENT_MALFORMED POLICY_FETCH_FAILED POLICY_INVALID POLICY_NOT_READY
POLICY_RULE_ID_INVALID POLICY_SERVER_BUSY POLICY_SERVER_UNAVAILABLE POLICY_SIGNATURE_INVALID POLICY_SIGNING_KEY_INVALID POLICY_TOO_OLD
POLICY_VERSION_STALE POLICY_WAIT_INVALID REQUEST_BODY_TIMEOUT REQUEST_BODY_TOO_LARGE REQUEST_FRAMING REQUEST_HEAD_TIMEOUT REQUEST_HEAD_TOO_LARGE
SCOPE_EXPRESSION_BAD_CHARACTER SCOPE_EXPRESSION_EMPTY SCOPE_EXPRESSION_TOO_COMPLEX SCOPE_EXPRESSION_UNEXPECTED_END SCOPE_EXPRESSION_UNEXPECTED_TOKEN
SERVICE_NAME_INVALID STEP_UP_REQUIRED STS_ACTOR_TOKEN_INVALID STS_AUTH_THROTTLED STS_BAD_ANSWER STS_DUPLICATE_PARAMETER STS_EXTERNAL_NOT_AT_ENTRYPOINT
STS_INTROSPECTION_THROTTLED STS_INTROSPECTION_UNAVAILABLE STS_INVALID_CLIENT STS_INVALID_SCOPE STS_INVALID_TARGET STS_KEYS_UNAVAILABLE
STS_MALFORMED_REQUEST STS_MAY_ACT_MISMATCH STS_METHOD_NOT_ALLOWED STS_MISSING_PARAMETER STS_NOT_ENTRYPOINT STS_NOT_READY STS_NO_LIFETIME_LEFT
STS_POLICY_DENIED STS_SERVER_ERROR STS_SIGNING_KEY_UNUSABLE STS_SUBJECT_TOKEN_EXPIRED STS_SUBJECT_TOKEN_INVALID STS_THROTTLED STS_UNAUTHORIZED_CLIENT
STS_UNAVAILABLE STS_UNSUPPORTED_GRANT_TYPE STS_UNSUPPORTED_TOKEN_TYPE TOKEN_ACT_INVALID TOKEN_ALG_NOT_ALLOWED TOKEN_BAD_SIGNATURE
TOKEN_CALLER_MISMATCH TOKEN_CERT_MISMATCH TOKEN_CERT_REQUIRED TOKEN_CNF_INVALID TOKEN_EXPIRED TOKEN_ID_TOKEN TOKEN_INACTIVE
TOKEN_INTROSPECTION_THROTTLED TOKEN_INTROSPECTION_UNAVAILABLE TOKEN_KEYS_UNAVAILABLE TOKEN_MALFORMED TOKEN_MESH_ON_PLAINTEXT TOKEN_NOT_YET_VALID
TOKEN_TOO_LARGE TOKEN_UNBOUND TOKEN_UNKNOWN_KID TOKEN_UNTRUSTED_ISSUER TOKEN_WRONG_AUDIENCE TOKEN_WRONG_TYP UNAUTHENTICATED UNKNOWN_SERVICE
UNSUPPORTED_MEDIA_TYPE UPGRADE_REFUSED UPSTREAM_FRAMING UPSTREAM_IDENTITY_MISMATCH UPSTREAM_TIMEOUT UPSTREAM_TLS_FAILED UPSTREAM_UNREACHABLE USAGE
`
  .trim()
  .split(/\s+/)
  .map((code) => `BATON_${code}`);

/** `BATON_*` literals in src/ that are environment variable names (the injector writes them, the image sets them), not error codes. */
const ENVIRONMENT_VARIABLES: ReadonlySet<string> = new Set([
  'BATON_EXTERNAL_ISSUERS',
  'BATON_HEALTHCHECK_URL',
  'BATON_HOST',
  'BATON_LOG_LEVEL',
  'BATON_OUTBOUND',
  'BATON_SERVICE',
]);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? sourceFiles(path) : entry.name.endsWith('.ts') ? [path] : [];
  });
}

const FILES = sourceFiles(SRC);
const ERROR_MODULES = FILES.filter((file) => file.endsWith('/errors.ts'));
const modules = new Map<string, Record<string, unknown>>();
for (const file of ERROR_MODULES) modules.set(relative(ROOT, file), (await import(file)) as Record<string, unknown>);

/** Every code a source file names, as `'BATON_…'`, except environment variable names (`BATON_STS__CLIENT_ID`). */
function codesInSources(): Map<string, Set<string>> {
  const found = new Map<string, Set<string>>();
  for (const file of FILES) {
    for (const [, code] of readFileSync(file, 'utf8').matchAll(/'(BATON_[A-Z0-9_]*[A-Z0-9])'/g)) {
      if (code === undefined || code.includes('__') || ENVIRONMENT_VARIABLES.has(code)) continue;
      found.set(code, (found.get(code) ?? new Set()).add(relative(ROOT, file)));
    }
  }
  return found;
}

/** GitHub's heading anchor: lower case, punctuation but `-` and `_` dropped, spaces to `-`. */
function githubSlug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

interface Section {
  readonly code: string;
  readonly body: string;
}

/** The catalogue without its "Removed codes" section: what baton sends today. */
const CURRENT = CATALOGUE.split(/^## Removed codes$/m)[0] ?? '';

function catalogueSections(): Section[] {
  const sections: Section[] = [];
  const parts = CURRENT.split(/^### /m).slice(1);
  for (const part of parts) {
    const [heading = '', ...rest] = part.split('\n');
    sections.push({ code: heading.trim(), body: rest.join('\n').split(/^## /m)[0]?.trim() ?? '' });
  }
  return sections;
}

interface Alias {
  readonly removed: string;
  /** The `<a id>` the row carries, for old problem types. */
  readonly anchor: string | undefined;
  /** The code it became; undefined for a code that was never sent. */
  readonly now: string | undefined;
  readonly reasons: readonly string[];
}

/** The rows of docs/errors.md "Removed codes": `| <a id="…"></a>\`OLD\` | [\`NEW\`](#new) | \`reason\`, … |`. */
function removedCodes(): Alias[] {
  const section = CATALOGUE.split(/^## Removed codes$/m)[1]?.split(/^## /m)[0] ?? '';
  return [...section.matchAll(/^\|(.*)\|\s*$/gm)]
    .map(([, row]) => (row ?? '').split('|').map((cell) => cell.trim()))
    .filter(([first]) => first?.includes('`BATON_') === true)
    .map(([removed = '', now = '', reasons = '']) => ({
      removed: /`(BATON_[A-Z0-9_]+)`/.exec(removed)?.[1] ?? removed,
      anchor: /<a id="([^"]+)"><\/a>/.exec(removed)?.[1],
      now: /`(BATON_[A-Z0-9_]+)`/.exec(now)?.[1],
      reasons: [...reasons.matchAll(/`([^`]+)`/g)].map(([, reason]) => reason ?? ''),
    }));
}

describe('error catalogue (docs/errors.md)', () => {
  it("keeps every defineError in a part's errors.ts", () => {
    const elsewhere = FILES.filter(
      (file) => !file.endsWith('/errors.ts') && /\bdefineError\(/.test(readFileSync(file, 'utf8')),
    );
    assert.deepEqual(
      elsewhere.map((file) => relative(ROOT, file)),
      [],
    );
  });

  it('has one base: every error class in src/ extends BatonError, directly or through another baton error', () => {
    const own = FILES.filter(
      (file) =>
        file !== join(SRC, 'core', 'errors.ts') &&
        /\bextends (Error|TypeError|RangeError)\b/.test(readFileSync(file, 'utf8')),
    );
    assert.deepEqual(
      own.map((file) => relative(ROOT, file)),
      [],
    );
  });

  it('defines each code once, and refuses a second definition at import', () => {
    const codes = definedErrors().map((spec) => spec.code);
    assert.equal(new Set(codes).size, codes.length);
    const [first] = codes;
    assert.ok(
      first !== undefined && codes.length > 40,
      `expected the errors modules to define the codes, got ${codes.length}`,
    );
    assert.throws(() => defineError({ code: first, status: 500, title: 'again' }), TypeError);
  });

  it("names each code in exactly one source file's definition", () => {
    const definedIn = new Map<string, string[]>();
    for (const [file, exports] of modules) {
      for (const value of Object.values(exports)) {
        const code: unknown = typeof value === 'function' ? (value as { code?: unknown }).code : undefined;
        if (typeof code === 'string') definedIn.set(code, [...new Set([...(definedIn.get(code) ?? []), file])]);
      }
    }
    const twice = [...definedIn].filter(([, files]) => files.length > 1);
    assert.deepEqual(twice, []);
  });

  it('gives no two error classes the same name', () => {
    const codeOf = new Map<string, string>();
    for (const exports of modules.values()) {
      for (const [name, value] of Object.entries(exports)) {
        if (typeof value !== 'function' || !(value.prototype instanceof Error)) continue;
        const code = (value as { code?: unknown }).code;
        const seen = codeOf.get(name);
        assert.ok(seen === undefined || seen === code, `${name} is both ${seen} and ${String(code)}`);
        codeOf.set(name, String(code));
      }
    }
  });

  it('documents every code baton can report, and nothing else', () => {
    const documented = catalogueSections().map((section) => section.code);
    assert.equal(new Set(documented).size, documented.length, 'a code has two sections');
    const codes = new Set([...definedErrors().map((spec) => spec.code), ...codesInSources().keys()]);
    const undocumented = [...codes].filter((code) => !documented.includes(code)).sort();
    assert.deepEqual(
      undocumented,
      [],
      'codes without a section in docs/errors.md (a BATON_* environment variable name without `__` belongs in ENVIRONMENT_VARIABLES above)',
    );
    const stale = documented.filter((code) => !codes.has(code)).sort();
    assert.deepEqual(stale, [], 'sections in docs/errors.md for codes that no longer exist');
  });

  it('says in each section what the code means, with the status and OAuth error the code carries', () => {
    const sections = new Map(catalogueSections().map((section) => [section.code, section.body]));
    for (const spec of definedErrors()) {
      const body = sections.get(spec.code) ?? '';
      assert.ok(
        body.startsWith(`${spec.status}`),
        `${spec.code}: expected its section to start with its status ${spec.status}`,
      );
      if (spec.oauthError !== undefined)
        assert.ok(
          body.includes(`(\`${spec.oauthError}\`)`),
          `${spec.code}: expected its section to name ${spec.oauthError}`,
        );
      assert.ok(body.length > 60, `${spec.code}: expected a section that says what it means and what to do`);
    }
    for (const [code, body] of sections)
      assert.ok(body.length > 20, `${code}: expected a section that says what it means`);
    // A cause the token endpoint says in other words (src/sts/errors.ts) documents those too.
    for (const [code, answer] of TOKEN_ENDPOINT_ANSWERS) {
      const body = sections.get(code) ?? '';
      for (const error of [answer.error, ...Object.values(answer.byReason ?? {})])
        assert.ok(
          body.includes(`(\`${error}\`)`),
          `${code}: expected its section to name ${error} at the token endpoint`,
        );
      for (const reason of Object.keys(answer.byReason ?? {}))
        assert.ok(body.includes(`\`${reason}\``), `${code}: expected its section to name the reason ${reason}`);
      assert.ok(
        body.includes(`${answer.status}`),
        `${code}: expected its section to name the token endpoint's status ${answer.status}`,
      );
    }
  });

  it("points every problem type and error_uri at the code's anchor in docs/errors.md", () => {
    const anchors = new Set([
      ...[...CATALOGUE.matchAll(/^#{1,6} (.+)$/gm)].map(([, heading]) => githubSlug(heading ?? '')),
      ...[...CATALOGUE.matchAll(/<a id="([^"]+)"><\/a>/g)].map(([, id]) => id ?? ''),
    ]);
    for (const spec of definedErrors()) {
      const error = new HttpError(spec, 'detail');
      assert.equal(error.type, `${ERROR_CATALOGUE_URL}#${errorAnchor(spec.code)}`);
      assert.equal(problemType(spec.code), error.type);
      assert.ok(
        anchors.has(errorAnchor(spec.code)),
        `${spec.code}: no heading makes the anchor #${errorAnchor(spec.code)}`,
      );
      if (spec.oauthError !== undefined) assert.equal(toOAuthError(error).error_uri, error.type);
    }
    const links = [...CATALOGUE.matchAll(/\]\(#([^)]+)\)/g)].map(([, anchor]) => anchor ?? '');
    assert.deepEqual(
      links.filter((anchor) => !anchors.has(anchor)),
      [],
      'links to anchors docs/errors.md does not have',
    );
  });

  it('keeps every code of the catalogue before #25: documented, or removed with its alias', () => {
    const documented = new Set(catalogueSections().map((section) => section.code));
    const removed = new Set(removedCodes().map((alias) => alias.removed));
    assert.equal(CODES_BEFORE_25.length, 119);
    assert.deepEqual(
      CODES_BEFORE_25.filter((code) => documented.has(code) === removed.has(code)),
      [],
      'each code is either documented or removed, never both or neither',
    );
  });

  it('holds each removed code to its alias: an anchor, the live code it became with its reason, and a CHANGELOG line', () => {
    const aliases = removedCodes();
    assert.ok(aliases.length > 0, 'expected the Removed codes table');
    assert.equal(new Set(aliases.map((alias) => alias.removed)).size, aliases.length, 'a removed code has two rows');
    const sections = new Map(catalogueSections().map((section) => [section.code, section.body]));
    const live = new Set([...definedErrors().map((spec) => spec.code), ...codesInSources().keys()]);
    for (const { removed, anchor, now, reasons } of aliases) {
      assert.ok(
        !live.has(removed) && !sections.has(removed),
        `${removed}: removed, yet still defined, named in src/ or documented`,
      );
      assert.equal(
        anchor,
        errorAnchor(removed),
        `${removed}: its row needs <a id="${errorAnchor(removed)}"></a>, where old problem types land`,
      );
      if (now === undefined) {
        assert.equal(reasons.length, 0, `${removed}: a code that became none has no reason`);
        continue;
      }
      const body = sections.get(now);
      assert.ok(body !== undefined && live.has(now), `${removed}: became ${now}, which is not a live, documented code`);
      for (const reason of reasons)
        assert.ok(body.includes(`\`${reason}\``), `${removed}: ${now}'s section does not name the reason ${reason}`);
      const named = CHANGELOG.split('\n').some(
        (line) => line.includes(`\`${removed}\``) && line.includes(`\`${now}\``),
      );
      assert.ok(named, `${removed}: expected a CHANGELOG line naming it and ${now}`);
    }
  });

  it('names no removed code in docs/ but in its alias row', () => {
    const removed = removedCodes().map((alias) => alias.removed);
    const pages = readdirSync(join(ROOT, 'docs'))
      .filter((name) => name.endsWith('.md'))
      .map((name) => ({ name, text: name === 'errors.md' ? CURRENT : readFileSync(join(ROOT, 'docs', name), 'utf8') }));
    const stale = pages.flatMap(({ name, text }) =>
      removed.filter((code) => new RegExp(`\\b${code}\\b`).test(text)).map((code) => `${name}: ${code}`),
    );
    assert.deepEqual(stale, []);
  });

  it('takes its base URL from the repository package.json names, at the tag of the package version', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      repository?: { url?: string };
      homepage?: string;
      version: string;
    };
    const repository = pkg.repository?.url?.replace(/^git\+/, '').replace(/\.git$/, '');
    assert.ok(repository !== undefined && repository.startsWith('https://'), 'expected package.json repository.url');
    // The release workflow builds on tags v*.*.* (.github/workflows/release.yml): a problem type sent by a release reads that release's catalogue.
    assert.equal(ERROR_CATALOGUE_URL, `${repository}/blob/v${pkg.version}/docs/errors.md`);
    assert.ok(pkg.homepage?.startsWith(repository), 'expected package.json homepage in the same repository');
    assert.equal(
      FILES.filter((file) => readFileSync(file, 'utf8').includes('docs/errors.md#')).length,
      0,
      'the catalogue URL is built in one place',
    );
  });
});
