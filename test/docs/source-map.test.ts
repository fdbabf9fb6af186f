/**
 * docs/design.md's map of src/ names every folder that holds source, and
 * nothing else: a folder added, moved or removed without the map fails here.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Folders under src/ with at least one .ts file of their own. */
function sourceFolders(dir = join(ROOT, 'src')): string[] {
  const entries = readdirSync(dir, { withFileTypes: true });
  const own = entries.some((e) => e.isFile() && e.name.endsWith('.ts')) ? [relative(ROOT, dir)] : [];
  return [...own, ...entries.filter((e) => e.isDirectory()).flatMap((e) => sourceFolders(join(dir, e.name)))];
}

function mappedFolders(): string[] {
  const design = readFileSync(join(ROOT, 'docs/design.md'), 'utf8');
  const start = design.indexOf('## Map of `src/`');
  assert.ok(start !== -1, 'docs/design.md has a "Map of `src/`" section');
  const section = design.slice(start, design.indexOf('\n## ', start + 1));
  return [...section.matchAll(/^\| `(src\/[^`]+)` \|/gm)].map((m) => m[1] as string);
}

describe('docs/design.md map of src/', () => {
  it('lists exactly the folders that hold source, once each', () => {
    const mapped = mappedFolders();
    assert.equal(new Set(mapped).size, mapped.length, 'a folder is listed twice');
    assert.deepEqual([...mapped].sort(), sourceFolders().sort());
  });
});
