/**
 * Every file the user docs name by path (`src/…`, `test/…`, `bench/…`,
 * `scripts/…`) exists: a page that sends a reader to a file merged away
 * (#25 folded several) fails here instead of misleading them. The
 * CHANGELOG is history and may name files that are gone.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
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
