/**
 * The Dockerfile, checked without a Docker engine (there is none where the
 * tests run): linted with dockerfile-utils plus the hadolint-style rules this
 * image promises, and its stages run by hand. Each stage's WORKDIR becomes a
 * temporary folder, COPY copies from the checkout or from an earlier stage's
 * folder, RUN runs there with the Node.js 24 that runs the tests (the base
 * image is node:24), and the runtime stage's ENTRYPOINT is started with its
 * ENV. What this cannot check (the base image, the runtime stage's RUN, which
 * edits the image's system folders, multi-platform builds) is left to the
 * release workflow, .github/workflows/release.yml.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, delimiter, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { validate } from 'dockerfile-utils';
import { parse } from 'yaml';
import { PROJECT_ROOT } from '../../scripts/build.ts';
import { PREREQUISITES } from '../../scripts/test-prerequisites.ts';

interface Instruction {
  readonly keyword: string;
  readonly args: string;
  readonly line: number;
}
interface Stage {
  readonly name: string;
  readonly from: string;
  readonly instructions: Instruction[];
}

const TEXT = readFileSync(join(PROJECT_ROOT, 'Dockerfile'), 'utf8');

/** Instructions with their continuation lines joined; comments and the parser directive dropped. */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let line = lines[i]!;
    if (/^\s*(#|$)/.test(line)) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) line = `${line.slice(0, -1)} ${lines[++i]!.trim()}`;
    const match = /^\s*(\w+)\s+(.*)$/.exec(line);
    assert.ok(match, `Dockerfile:${start + 1}: not an instruction: ${line}`);
    out.push({ keyword: match[1]!.toUpperCase(), args: match[2]!.trim(), line: start + 1 });
  }
  return out;
}

function stages(all: readonly Instruction[]): Stage[] {
  const out: Stage[] = [];
  for (const instruction of all) {
    if (instruction.keyword === 'FROM') {
      const match = /^(?:--platform=\S+\s+)?(\S+)\s+AS\s+(\S+)$/i.exec(instruction.args);
      assert.ok(match, `Dockerfile:${instruction.line}: every stage is named (FROM image AS name)`);
      out.push({ from: match[1]!, name: match[2]!, instructions: [] });
    } else {
      out.at(-1)?.instructions.push(instruction);
    }
  }
  return out;
}

const ALL = instructions(TEXT);
const STAGES = stages(ALL);
const ARGS = Object.fromEntries(
  ALL.filter((i) => i.keyword === 'ARG' && i.args.includes('=')).map((i) => i.args.split('=', 2) as [string, string]),
);
const runtime = STAGES.at(-1)!;

describe('Dockerfile', () => {
  it('passes dockerfile-utils validation with no problem at all', () => {
    const problems = validate(TEXT).map((d) => `Dockerfile:${d.range.start.line + 1}: ${d.message}`);
    assert.deepEqual(problems, []);
  });

  it('follows the rules the image promises (hadolint-style)', () => {
    assert.match(
      ARGS.NODE_IMAGE ?? '',
      /^node:24(\.\d+)*-[a-z]+$/,
      'the base image is a pinned Node.js 24 tag, never latest',
    );
    for (const stage of STAGES) assert.ok(stage.from === '${NODE_IMAGE}', `stage ${stage.name} builds on NODE_IMAGE`);
    for (const i of ALL) {
      assert.notEqual(i.keyword, 'ADD', `Dockerfile:${i.line}: COPY, not ADD (DL3020)`);
      assert.notEqual(i.keyword, 'MAINTAINER', `Dockerfile:${i.line}: MAINTAINER is deprecated (DL4000)`);
      if (i.keyword === 'RUN') {
        assert.doesNotMatch(
          i.args,
          /\bnpm (install|i)\b/,
          `Dockerfile:${i.line}: npm ci from the lockfile, not npm install`,
        );
        assert.doesNotMatch(i.args, /\bsudo\b/, `Dockerfile:${i.line}: no sudo (DL3004)`);
        assert.doesNotMatch(i.args, /\bcd\s/, `Dockerfile:${i.line}: WORKDIR, not cd (DL3003)`);
        if (/apt-get install/.test(i.args))
          assert.match(i.args, /--no-install-recommends/, `Dockerfile:${i.line}: DL3015`);
      }
    }
    const user = runtime.instructions.filter((i) => i.keyword === 'USER').at(-1);
    assert.ok(user, 'the runtime stage sets USER');
    assert.match(
      user.args,
      /^[1-9]\d*:[1-9]\d*$/,
      'a numeric non-root user, so Kubernetes can check runAsNonRoot (DL3002)',
    );
    const entrypoint = runtime.instructions.find((i) => i.keyword === 'ENTRYPOINT');
    assert.ok(entrypoint && entrypoint.args.startsWith('['), 'ENTRYPOINT in exec form, so signals reach node (DL3025)');
    assert.ok(
      runtime.instructions.some((i) => i.keyword === 'HEALTHCHECK'),
      'a HEALTHCHECK',
    );
    assert.match(TEXT, /org\.opencontainers\.image\.title="baton-mesh"/, 'the image carries the package name');
  });

  it('the release workflow builds it for amd64 and arm64 as baton-mesh, after the tests (it cannot run here: no Docker engine)', () => {
    const workflow = parse(readFileSync(join(PROJECT_ROOT, '.github/workflows/release.yml'), 'utf8')) as {
      on: { push: { tags: string[] } };
      jobs: Record<
        string,
        { needs?: string; steps: Array<{ uses?: string; run?: string; with?: Record<string, unknown> }> }
      >;
    };
    assert.deepEqual(workflow.on.push.tags, ['v*.*.*']);
    const build = workflow.jobs.image!.steps.find((step) => step.uses?.startsWith('docker/build-push-action@'));
    assert.ok(build, 'docker/build-push-action builds the image');
    assert.equal(build.with?.platforms, 'linux/amd64,linux/arm64');
    const meta = workflow.jobs.image!.steps.find((step) => step.uses?.startsWith('docker/metadata-action@'));
    assert.match(String(meta?.with?.images), /\/baton-mesh$/);
    assert.equal(workflow.jobs.image!.needs, 'test');
    const install = workflow.jobs.test!.steps.map((step) => step.run ?? '').join('\n');
    for (const p of PREREQUISITES)
      assert.match(
        install,
        new RegExp(`\\b${p.debianPackage}\\b`),
        `the workflow's test job installs ${p.debianPackage}`,
      );
    assert.ok(workflow.jobs.test!.steps.some((step) => step.run === 'npm test'));
  });

  describe('its stages, run by hand', { timeout: 600_000 }, () => {
    const work = mkdtempSync(join(tmpdir(), 'baton-dockerfile-'));
    const dirs = new Map<string, string>();
    let env: Record<string, string> = {};

    before(
      () => {
        for (const stage of STAGES) {
          const dir = join(work, stage.name);
          mkdirSync(dir);
          dirs.set(stage.name, dir);
          let workdir = dir;
          env = {};
          for (const { keyword, args, line } of stage.instructions) {
            if (keyword === 'WORKDIR') assert.equal(args, '/app', `Dockerfile:${line}: the stages work in /app`);
            if (keyword === 'ENV') {
              const match = /^(\w+)=(.*)$/.exec(args);
              assert.ok(match, `Dockerfile:${line}: ENV KEY=value`);
              env[match[1]!] = match[2]!;
            }
            if (keyword === 'COPY') {
              const parts = args.split(/\s+/);
              const from = parts[0]!.startsWith('--from=')
                ? dirs.get(parts.shift()!.slice('--from='.length))
                : PROJECT_ROOT;
              assert.ok(from, `Dockerfile:${line}: COPY --from names an earlier stage`);
              const target = parts.pop()!;
              for (const source of parts) {
                const src = source.startsWith('/app/') ? join(from, source.slice('/app/'.length)) : join(from, source);
                const dest = target.endsWith('/')
                  ? join(workdir, target, source.endsWith('/') ? '' : basename(source))
                  : join(workdir, target);
                cpSync(src, dest, { recursive: true, filter: (p) => !p.includes('/node_modules/.cache') });
              }
            }
            if (keyword === 'RUN' && stage !== runtime) {
              // npm answers from the cache that the checkout's npm ci filled; only a package missing there is fetched from the registry.
              const result = spawnSync('sh', ['-c', args], {
                cwd: workdir,
                encoding: 'utf8',
                timeout: 300_000,
                env: {
                  ...process.env,
                  ...env,
                  PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`,
                  npm_config_prefer_offline: 'true',
                  npm_config_update_notifier: 'false',
                },
              });
              assert.equal(
                result.status,
                0,
                `Dockerfile:${line} (stage ${stage.name}) RUN ${args}\n${result.stdout.slice(-2000)}${result.stderr.slice(-3000)}`,
              );
            }
            workdir = dir;
          }
        }
      },
      { timeout: 600_000 },
    );
    after(() => rmSync(work, { recursive: true, force: true }));

    function entrypoint(args: readonly string[]) {
      const exec = JSON.parse(runtime.instructions.find((i) => i.keyword === 'ENTRYPOINT')!.args) as string[];
      assert.equal(exec[0], 'node');
      const script = join(dirs.get(runtime.name)!, exec[1]!.replace(/^\/app\//, ''));
      // No type stripping: the image must run plain JavaScript.
      const nodeOptions = `${env.NODE_OPTIONS ?? ''} --no-experimental-strip-types`.trim();
      return spawnSync(process.execPath, [script, ...exec.slice(2), ...args], {
        cwd: tmpdir(),
        encoding: 'utf8',
        timeout: 120_000,
        env: { ...process.env, ...env, NODE_OPTIONS: nodeOptions },
      });
    }

    it('the runtime stage holds the bundle and production dependencies only', () => {
      const app = dirs.get(runtime.name)!;
      const lock = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package-lock.json'), 'utf8')) as {
        packages: Record<string, { dev?: boolean }>;
      };
      const devOnly = Object.entries(lock.packages).filter(
        ([path, entry]) => entry.dev === true && /^node_modules\/(@[^/]+\/)?[^/]+$/.test(path),
      );
      assert.ok(devOnly.length > 50, 'the lockfile marks the dev-only packages');
      for (const [path] of devOnly)
        assert.equal(existsSync(join(app, path)), false, `dev-only ${path} is not in the image`);
      assert.ok(readFileSync(join(app, 'dist/baton.mjs'), 'utf8').length > 0);
    });

    it('ENTRYPOINT --help, policy check and the demo run from the runtime stage', { timeout: 300_000 }, () => {
      const help = entrypoint(['--help']);
      assert.equal(help.status, 0, help.stderr);
      assert.match(help.stdout, /Usage: baton <command>/);
      const check = entrypoint(['policy', 'check', join(PROJECT_ROOT, 'examples/shop.callgraph.yaml')]);
      assert.equal(check.status, 0, check.stderr);
      const demo = entrypoint(['demo']);
      assert.equal(demo.status, 0, demo.stderr.slice(-3000));
      assert.match(demo.stdout, /allowed end to end/);
    });
  });
});
