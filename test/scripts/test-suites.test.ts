/**
 * `npm test` runs two suites (package.json): unit, the folders that mirror
 * src/ (one per part, spawning nothing: test/helpers/spawns-nothing.ts), and
 * system, the folders of tests that start real processes or check what ships
 * (e2e, faults, deploy, package, …). Both globs are written out by hand;
 * this keeps them honest, so that a new folder of tests is never in neither
 * suite and so never run, nor in both.
 */
import assert from 'node:assert/strict';
import { globSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PROJECT_ROOT } from '../../scripts/build.ts';

const scripts = (
  JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
).scripts;

/** The folders of one suite's glob: `"test/{a,b}/**\/*.test.ts"` → [a, b]. */
function folders(script: string): string[] {
  const glob = /"test\/\{([^}]+)\}\/\*\*\/\*\.test\.ts"/.exec(scripts[script] ?? '');
  assert.ok(glob, `expected the ${script} script to run "test/{…}/**/*.test.ts", got ${scripts[script]}`);
  return glob[1]!.split(',').sort();
}

describe('the unit and system suites', () => {
  const unit = folders('test:unit');
  const system = folders('test:system');

  it('run every folder that holds tests, each in one suite', () => {
    const withTests = [
      ...new Set(globSync('test/**/*.test.ts', { cwd: PROJECT_ROOT }).map((file) => file.split('/')[1]!)),
    ].sort();
    assert.deepEqual([...unit, ...system].sort(), withTests);
    assert.deepEqual(
      unit.filter((folder) => system.includes(folder)),
      [],
    );
  });

  it('unit runs the folders named after parts of src/, and only those', () => {
    const parts = readdirSync(join(PROJECT_ROOT, 'src'), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name);
    assert.deepEqual(
      unit.filter((folder) => !parts.includes(folder)),
      [],
      'a unit folder that is no part of src/',
    );
    assert.deepEqual(
      system.filter((folder) => parts.includes(folder)),
      [],
      'a folder named after a part of src/ belongs to the unit suite',
    );
  });

  it('unit forbids spawning, both leave no handle open, and npm test runs lint, typecheck, unit and system', () => {
    assert.match(scripts['test:unit'] ?? '', /--import \.\/test\/helpers\/spawns-nothing\.ts/);
    for (const suite of ['test:unit', 'test:system']) {
      assert.match(scripts[suite] ?? '', /--import \.\/test\/helpers\/leak-check\.ts/);
      assert.doesNotMatch(scripts[suite] ?? '', /--test-force-exit/);
    }
    assert.equal(scripts.test, 'npm run lint && npm run typecheck && npm run test:unit && npm run test:system');
  });
});
