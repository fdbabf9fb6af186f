/**
 * The error catalogue (docs/errors.md) and the code hold together: every
 * code is defined once, documented once under its own anchor, and every
 * problem `type` and `error_uri` baton writes points at that anchor. Adding
 * a code anywhere in src/ without its section here fails this file.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { ERROR_CATALOGUE_URL, HttpError, defineError, definedErrors, errorAnchor, problemType } from '../../src/core/errors.ts';
import { toOAuthError } from '../../src/sts/errors.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const SRC = join(ROOT, 'src');
const CATALOGUE = readFileSync(join(ROOT, 'docs', 'errors.md'), 'utf8');

/** `BATON_*` literals in src/ that are environment variable names the injector writes, not error codes. */
const ENVIRONMENT_VARIABLES: ReadonlySet<string> = new Set(['BATON_EXTERNAL_ISSUERS', 'BATON_HOST', 'BATON_LOG_LEVEL', 'BATON_OUTBOUND', 'BATON_SERVICE']);

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
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-');
}

interface Section {
  readonly code: string;
  readonly body: string;
}

function catalogueSections(): Section[] {
  const sections: Section[] = [];
  const parts = CATALOGUE.split(/^### /m).slice(1);
  for (const part of parts) {
    const [heading = '', ...rest] = part.split('\n');
    sections.push({ code: heading.trim(), body: rest.join('\n').split(/^## /m)[0]?.trim() ?? '' });
  }
  return sections;
}

describe('error catalogue (docs/errors.md)', () => {
  it('keeps every defineError in a part\'s errors.ts', () => {
    const elsewhere = FILES.filter((file) => !file.endsWith('/errors.ts') && /\bdefineError\(/.test(readFileSync(file, 'utf8')));
    assert.deepEqual(elsewhere.map((file) => relative(ROOT, file)), []);
  });

  it('has one base: every error class in src/ extends BatonError, directly or through another baton error', () => {
    const own = FILES.filter((file) => file !== join(SRC, 'core', 'errors.ts') && /\bextends (Error|TypeError|RangeError)\b/.test(readFileSync(file, 'utf8')));
    assert.deepEqual(own.map((file) => relative(ROOT, file)), []);
  });

  it('defines each code once, and refuses a second definition at import', () => {
    const codes = definedErrors().map((spec) => spec.code);
    assert.equal(new Set(codes).size, codes.length);
    const [first] = codes;
    assert.ok(first !== undefined && codes.length > 80, `expected the errors modules to define the codes, got ${codes.length}`);
    assert.throws(() => defineError({ code: first, status: 500, title: 'again' }), TypeError);
  });

  it('names each code in exactly one source file\'s definition', () => {
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
    assert.deepEqual(undocumented, [], 'codes without a section in docs/errors.md (a BATON_* environment variable name without `__` belongs in ENVIRONMENT_VARIABLES above)');
    const stale = documented.filter((code) => !codes.has(code)).sort();
    assert.deepEqual(stale, [], 'sections in docs/errors.md for codes that no longer exist');
  });

  it('says in each section what the code means, with the status and OAuth error the code carries', () => {
    const sections = new Map(catalogueSections().map((section) => [section.code, section.body]));
    for (const spec of definedErrors()) {
      const body = sections.get(spec.code) ?? '';
      assert.ok(body.startsWith(`${spec.status}`), `${spec.code}: expected its section to start with its status ${spec.status}`);
      if (spec.oauthError !== undefined) assert.ok(body.includes(`(\`${spec.oauthError}\`)`), `${spec.code}: expected its section to name ${spec.oauthError}`);
      assert.ok(body.length > 60, `${spec.code}: expected a section that says what it means and what to do`);
    }
    for (const [code, body] of sections) assert.ok(body.length > 20, `${code}: expected a section that says what it means`);
  });

  it('points every problem type and error_uri at the code\'s anchor in docs/errors.md', () => {
    const anchors = new Set([...CATALOGUE.matchAll(/^#{1,6} (.+)$/gm)].map(([, heading]) => githubSlug(heading ?? '')));
    for (const spec of definedErrors()) {
      const error = new HttpError(spec, 'detail');
      assert.equal(error.type, `${ERROR_CATALOGUE_URL}#${errorAnchor(spec.code)}`);
      assert.equal(problemType(spec.code), error.type);
      assert.ok(anchors.has(errorAnchor(spec.code)), `${spec.code}: no heading makes the anchor #${errorAnchor(spec.code)}`);
      if (spec.oauthError !== undefined) assert.equal(toOAuthError(error).error_uri, error.type);
    }
    const links = [...CATALOGUE.matchAll(/\]\(#([^)]+)\)/g)].map(([, anchor]) => anchor ?? '');
    assert.deepEqual(links.filter((anchor) => !anchors.has(anchor)), [], 'links to anchors docs/errors.md does not have');
  });

  it('takes its base URL from the repository package.json names, at the tag of the package version', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { repository?: { url?: string }; homepage?: string; version: string };
    const repository = pkg.repository?.url?.replace(/^git\+/, '').replace(/\.git$/, '');
    assert.ok(repository !== undefined && repository.startsWith('https://'), 'expected package.json repository.url');
    // The release workflow builds on tags v*.*.* (.github/workflows/release.yml): a problem type sent by a release reads that release's catalogue.
    assert.equal(ERROR_CATALOGUE_URL, `${repository}/blob/v${pkg.version}/docs/errors.md`);
    assert.ok(pkg.homepage?.startsWith(repository), 'expected package.json homepage in the same repository');
    assert.equal(FILES.filter((file) => readFileSync(file, 'utf8').includes('docs/errors.md#')).length, 0, 'the catalogue URL is built in one place');
  });
});
