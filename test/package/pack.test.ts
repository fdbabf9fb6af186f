/**
 * The npm package as a user gets it: `npm pack` (which builds the bundle on
 * prepack), install the tarball into an empty project, and run the installed
 * `baton` bin from there, on Node.js 24 and on the oldest Node.js that
 * package.json's "engines" admits. Nothing here reads the checkout's sources.
 */
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PROJECT_ROOT } from '../../scripts/build.ts';

interface Manifest {
  name: string;
  version: string;
  license: string;
  bin: Record<string, string>;
  engines: { node: string };
  files: string[];
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
}
interface LockEntry {
  version?: string;
  resolved?: string;
  integrity?: string;
  dev?: boolean;
  [key: string]: unknown;
}
interface PackResult {
  filename: string;
  integrity: string;
  files: Array<{ path: string }>;
}

const manifest = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as Manifest;
/** The oldest Node.js that "engines" admits, run against the packed bundle. */
const OLDEST_NODE = /^>=(\d+\.\d+\.\d+)$/.exec(manifest.engines.node)?.[1];
const work = mkdtempSync(join(tmpdir(), 'baton-pack-'));
const consumer = join(work, 'consumer');
// The Node.js 24 that runs the tests runs npm, npx and the bin: first on PATH, as on a user's machine.
const PATH = `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`;

function run(command: string, args: readonly string[], cwd: string, timeout = 120_000): SpawnSyncReturns<string> {
  return spawnSync(command, args, {
    cwd,
    encoding: 'utf8',
    timeout,
    env: {
      ...process.env,
      PATH,
      npm_config_update_notifier: 'false',
      npm_config_fund: 'false',
      npm_config_audit: 'false',
    },
  });
}

function ok(result: SpawnSyncReturns<string>, what: string): string {
  assert.equal(
    result.status,
    0,
    `${what} exited ${result.status ?? result.signal}:\n${result.stdout.slice(-2000)}\n${result.stderr.slice(-3000)}`,
  );
  return result.stdout;
}

function pack(destination: string): PackResult {
  const out = ok(run('npm', ['pack', '--json', '--pack-destination', destination], PROJECT_ROOT, 180_000), 'npm pack');
  // npm prints the prepack build's lines before the JSON.
  return (JSON.parse(out.slice(out.indexOf('[\n'))) as PackResult[])[0]!;
}

/**
 * A lockfile for the empty project: the tarball plus exactly the production
 * packages of this repository's lockfile, so `npm ci --prefer-offline` installs from
 * the npm cache that `npm ci` filled (the registry only for what the cache lacks).
 */
function consumerLock(tarball: string, integrity: string): object {
  const lock = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, LockEntry>;
  };
  const packages: Record<string, LockEntry> = {
    '': { name: 'consumer', version: '1.0.0', dependencies: { [manifest.name]: `file:${tarball}` } },
    [`node_modules/${manifest.name}`]: {
      version: manifest.version,
      resolved: `file:${tarball}`,
      integrity,
      license: manifest.license,
      dependencies: manifest.dependencies,
      bin: manifest.bin,
      engines: manifest.engines,
    },
  };
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path !== '' && entry.dev !== true) packages[path] = entry;
  }
  return { name: 'consumer', version: '1.0.0', lockfileVersion: 3, requires: true, packages };
}

describe(`the npm package ${manifest.name}`, { timeout: 600_000 }, () => {
  let packed: PackResult;

  before(
    () => {
      mkdirSync(consumer, { recursive: true });
      packed = pack(work);
    },
    { timeout: 600_000 },
  );
  after(() => rmSync(work, { recursive: true, force: true }));

  it('ships only what runs, with README, LICENSE and CHANGELOG', () => {
    const paths = packed.files.map((f) => f.path).sort();
    for (const required of [
      'LICENSE',
      'README.md',
      'CHANGELOG.md',
      'package.json',
      'dist/baton.mjs',
      'dist/shop.callgraph.yaml',
    ])
      assert.ok(paths.includes(required), `${required} is in the tarball`);
    const unexpected = paths.filter(
      (p) =>
        !/^(LICENSE|README\.md|CHANGELOG\.md|package\.json|dist\/[\w.-]+\.mjs|dist\/shop\.callgraph\.yaml)$/.test(p),
    );
    assert.deepEqual(unexpected, [], 'nothing else: no sources, tests, bench, fuzz, CI files, source maps or tarballs');
    assert.match(readFileSync(join(PROJECT_ROOT, 'LICENSE'), 'utf8'), /Apache License\s+Version 2\.0/);
    assert.equal(manifest.license, 'Apache-2.0');
  });

  it('writes the tarball README.md installs until the package is published', () => {
    assert.equal(packed.filename, `${manifest.name}-${manifest.version}.tgz`);
    assert.ok(
      readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8').includes(
        `npm install /path/to/baton-mesh/${packed.filename}`,
      ),
    );
  });

  it('builds the bundle on prepack, and bin points at it', () => {
    assert.match(manifest.scripts.prepack ?? '', /npm run build/);
    assert.deepEqual(manifest.bin, { baton: 'dist/baton.mjs' });
    assert.match(readFileSync(join(PROJECT_ROOT, 'dist/baton.mjs'), 'utf8'), /^#!\/usr\/bin\/env node\n/);
  });

  it('a second pack does not include the first tarball', () => {
    // The first pack lands where users run it, in the project folder.
    const first = join(PROJECT_ROOT, packed.filename);
    copyFileSync(join(work, packed.filename), first);
    try {
      const second = JSON.parse(
        ok(run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], PROJECT_ROOT), 'npm pack --dry-run'),
      ) as PackResult[];
      assert.deepEqual(
        second[0]!.files.filter((f) => f.path.endsWith('.tgz')),
        [],
      );
    } finally {
      rmSync(first, { force: true });
    }
  });

  describe('installed into an empty project', { timeout: 600_000 }, () => {
    before(
      () => {
        copyFileSync(join(work, packed.filename), join(consumer, packed.filename));
        writeFileSync(
          join(consumer, 'package.json'),
          JSON.stringify(
            {
              name: 'consumer',
              version: '1.0.0',
              private: true,
              dependencies: { [manifest.name]: `file:${packed.filename}` },
            },
            null,
            2,
          ),
        );
        writeFileSync(
          join(consumer, 'package-lock.json'),
          JSON.stringify(consumerLock(packed.filename, packed.integrity), null, 2),
        );
        ok(
          run('npm', ['ci', '--prefer-offline'], consumer, 300_000),
          `npm ci --prefer-offline of ${packed.filename} (its dependencies come from the npm cache that the checkout's npm ci filled)`,
        );
        writeFileSync(
          join(consumer, 'callgraph.yaml'),
          readFileSync(join(PROJECT_ROOT, 'examples/shop.callgraph.yaml')),
        );
      },
      { timeout: 600_000 },
    );

    it('npx baton --help', () => {
      assert.match(
        ok(run('npx', ['--prefer-offline', 'baton', '--help'], consumer), 'npx baton --help'),
        /Usage: baton <command>/,
      );
    });

    it('npx baton policy check', () => {
      assert.match(
        ok(
          run('npx', ['--prefer-offline', 'baton', 'policy', 'check', 'callgraph.yaml'], consumer),
          'npx baton policy check',
        ),
        /callgraph\.yaml: ok/,
      );
    });

    it('npx baton demo runs the allowed and the refused chain', { timeout: 300_000 }, () => {
      const out = ok(run('npx', ['--prefer-offline', 'baton', 'demo'], consumer, 180_000), 'npx baton demo');
      assert.match(out, /allowed end to end/);
      assert.match(out, /refused by the policy/);
    });

    it(`runs on the oldest Node.js that engines admits (${manifest.engines.node})`, { timeout: 600_000 }, () => {
      assert.ok(OLDEST_NODE, `engines.node is ">=X.Y.Z" (it is ${manifest.engines.node})`);
      const dir = join(work, `node-${OLDEST_NODE}`);
      mkdirSync(dir);
      // The `node` package brings a Node.js binary from the npm registry: the one test that needs it; a machine without registry access fails here, loudly.
      ok(
        run('npm', ['install', '--prefer-offline', '--no-save', `node@${OLDEST_NODE}`], dir, 300_000),
        `npm install node@${OLDEST_NODE} (needs the npm registry)`,
      );
      const node = join(dir, 'node_modules/node/bin/node');
      assert.equal(ok(run(node, ['--version'], consumer), 'node --version').trim(), `v${OLDEST_NODE}`);
      const bin = join(consumer, 'node_modules', manifest.name, manifest.bin.baton!);
      assert.match(
        ok(run(node, [bin, '--help'], consumer), `baton --help on Node.js ${OLDEST_NODE}`),
        /Usage: baton <command>/,
      );
      assert.match(
        ok(run(node, [bin, 'policy', 'check', 'callgraph.yaml'], consumer), 'policy check'),
        /callgraph\.yaml: ok/,
      );
      assert.match(ok(run(node, [bin, 'demo'], consumer, 180_000), 'demo'), /allowed end to end/);
    });

    it('refuses an older Node.js with one plain line', (t) => {
      const old = ['/usr/bin/node', '/usr/local/bin/node'].find(
        (p) =>
          existsSync(p) &&
          Number(spawnSync(p, ['-p', 'process.versions.node.split(".")[0]'], { encoding: 'utf8' }).stdout.trim()) < 22,
      );
      if (old === undefined) {
        t.diagnostic('!!! no Node.js older than 22 on this machine: the engines refusal was NOT exercised !!!');
        process.stdout.write(
          '\n!!!!! no Node.js older than 22 at /usr/bin/node or /usr/local/bin/node: the refusal of an old Node.js was NOT run !!!!!\n\n',
        );
        return;
      }
      const result = spawnSync(old, [join(consumer, 'node_modules', manifest.name, manifest.bin.baton!), '--help'], {
        encoding: 'utf8',
      });
      assert.equal(result.status, 1);
      assert.match(result.stderr, /^baton needs Node\.js 22\.18 or later \(24 recommended\); this is Node\.js 2\d\./);
      assert.ok(
        result.stderr.includes(OLDEST_NODE!.split('.').slice(0, 2).join('.')),
        'the refusal names the same version as engines',
      );
    });
  });
});
