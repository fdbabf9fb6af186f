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
import { parse } from 'yaml';
import { PROJECT_ROOT } from '../../scripts/build.ts';
import { PREREQUISITES } from '../../scripts/test-prerequisites.ts';

const manifest = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as {
  scripts: Record<string, string>;
  engines: { node: string };
};
const scripts = manifest.scripts;

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

describe('the CI workflow (.github/workflows/ci.yml)', () => {
  type Job = { strategy?: { matrix?: { node?: string[] } }; steps: Array<{ run?: string; if?: string }> };
  const workflow = parse(readFileSync(join(PROJECT_ROOT, '.github/workflows/ci.yml'), 'utf8')) as {
    on: Record<string, unknown>;
    jobs: Record<string, Job>;
  };
  const runs = (job: string): string => (workflow.jobs[job]?.steps ?? []).map((step) => step.run ?? '').join('\n');

  it('runs on every push and pull request', () => {
    assert.deepEqual(Object.keys(workflow.on).sort(), ['pull_request', 'push']);
  });

  it('runs lint, typecheck, unit and system, unit and system on 24 and on the oldest Node.js that engines admits', () => {
    const oldest = /^>=(\d+\.\d+\.\d+)$/.exec(manifest.engines.node)?.[1];
    assert.ok(oldest, `expected engines.node to be ">=X.Y.Z", got ${manifest.engines.node}`);
    assert.match(runs('lint'), /npm run lint/);
    assert.match(runs('lint'), /npm run typecheck/);
    for (const job of ['unit', 'system'])
      assert.deepEqual(workflow.jobs[job]?.strategy?.matrix?.node, [oldest, '24'], job);
    assert.match(runs('unit'), /npm run test:unit/);
    assert.match(runs('system'), /npm run test:system/);
  });

  it('installs every program the system tests run', () => {
    for (const p of PREREQUISITES)
      assert.match(runs('system'), new RegExp(`apt-get install .*\\b${p.debianPackage}\\b`), p.debianPackage);
  });
});
