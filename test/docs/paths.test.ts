/**
 * Every file the user docs name by path (`src/…`, `test/…`, `bench/…`,
 * `scripts/…`) exists: a page that sends a reader to a file merged away
 * (#25 folded several) fails here instead of misleading them. So does a
 * source file whose comment points at another (`./x.ts`, `src/…`) that is
 * gone. The CHANGELOG is history and may name files that are gone.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PATH = /\b(?:src|test|bench|scripts)\/[A-Za-z0-9_./-]+\.(?:ts|md|yaml|json)\b/g;

describe('paths the docs name', () => {
  const pages = [
    'README.md',
    ...readdirSync(join(ROOT, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => `docs/${f}`),
  ];
  for (const page of pages) {
    it(`${page} names only files that exist`, () => {
      const text = readFileSync(join(ROOT, page), 'utf8');
      const missing = [...new Set(text.match(PATH) ?? [])].filter((path) => !existsSync(join(ROOT, path)));
      assert.deepEqual(missing, [], `${page} names files that do not exist`);
    });
  }
});

/** Every .ts file under `dir`, relative to the root. */
function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(dir, f));
}

const RELATIVE = /(?<![\w/])\.\.?\/[A-Za-z0-9_./-]+\.ts\b/g;

describe('paths the source comments name', () => {
  it('src/, test/, bench/ and scripts/ name only files that exist, relative or from the root', () => {
    const missing: string[] = [];
    const tests = sources('test').filter((f) => !f.startsWith('test/fixtures/') && f !== 'test/docs/paths.test.ts');
    for (const file of [...sources('src'), ...sources('bench'), ...sources('scripts'), ...tests]) {
      const text = readFileSync(join(ROOT, file), 'utf8');
      for (const path of text.match(PATH) ?? []) if (!existsSync(join(ROOT, path))) missing.push(`${file}: ${path}`);
      for (const path of text.match(RELATIVE) ?? [])
        // Relative to the file, or to the root where it is a command's argument (`--import ./test/…`).
        if (!existsSync(join(ROOT, dirname(file), path)) && !existsSync(join(ROOT, path)))
          missing.push(`${file}: ${path}`);
    }
    assert.deepEqual(missing, [], 'source comments name files that do not exist');
  });
});
