import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { installMessage, missingPrerequisites, PREREQUISITES } from '../../scripts/test-prerequisites.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('npm test prerequisites', () => {
  it('lists every missing program with its Debian package in one message', () => {
    const missing = missingPrerequisites((command) => command === 'openssl');
    assert.deepEqual(
      missing.map((p) => p.command),
      PREREQUISITES.map((p) => p.command).filter((c) => c !== 'openssl'),
    );
    const message = installMessage(missing);
    for (const p of missing) assert.ok(message.includes(`${p.command} (Debian/Ubuntu package ${p.debianPackage})`), p.command);
    assert.match(message, /apt-get install -y --no-install-recommends redis-server prometheus kubernetes-client curl nginx haproxy\n/);
  });

  it('stops at once, exit 1, naming every program, on a machine that has none of them', () => {
    // A PATH with only a shell: nothing the tests need is found, and --check never installs.
    const bin = mkdtempSync(join(tmpdir(), 'baton-prereq-'));
    try {
      symlinkSync('/bin/sh', join(bin, 'sh'));
      const result = spawnSync(process.execPath, ['scripts/test-prerequisites.ts', '--check'], { cwd: ROOT, encoding: 'utf8', env: { PATH: bin }, timeout: 20_000 });
      assert.equal(result.status, 1, result.stderr);
      for (const p of PREREQUISITES) assert.ok(result.stderr.includes(`  - ${p.command} `), `${p.command} is named:\n${result.stderr}`);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });

  it('passes on this machine, so the rest of npm test can run', () => {
    const result = spawnSync(process.execPath, ['scripts/test-prerequisites.ts', '--check'], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 });
    assert.equal(result.status, 0, result.stderr);
  });

  it('runs before the tests, and the README lists every package it installs', () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    assert.match(manifest.scripts.pretest ?? '', /scripts\/test-prerequisites\.ts/);
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    for (const p of PREREQUISITES) assert.ok(readme.includes(`\`${p.debianPackage}\``), `README.md names the ${p.debianPackage} package (${p.command})`);
  });
});
