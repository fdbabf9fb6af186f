import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { createLogger } from '../../src/telemetry/logger.ts';
import type { LoadedPolicy } from '../../src/policy/language/load.ts';
import { createPolicyWatcher, type PolicyWatcher } from '../../src/policy/distribution/watch.ts';
import { waitFor } from '../helpers/net.ts';

const FIXTURE = readFileSync(new URL('../fixtures/policy-server/callgraph.yaml', import.meta.url), 'utf8');
const EDITED = FIXTURE.replace('maxDepth: 4', 'maxDepth: 5');
const BROKEN = FIXTURE.replace('from: gateway', 'from: nowhere');

const dirs: string[] = [];
after(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'baton-watch-'));
  dirs.push(dir);
  return dir;
}

function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      callback();
    },
  });
  return { logger: createLogger({ name: 'test', destination }), lines };
}

function watchFor(path: string, options: { fsWatch?: boolean; pollIntervalMs?: number } = {}) {
  const { logger, lines } = capturingLogger();
  const changes: LoadedPolicy[] = [];
  const watcher: PolicyWatcher = createPolicyWatcher(path, {
    logger,
    debounceMs: 20,
    pollIntervalMs: options.pollIntervalMs ?? 200,
    fsWatch: options.fsWatch ?? true,
  });
  watcher.onChange((loaded) => changes.push(loaded));
  after(() => watcher.close());
  return { watcher, changes, lines };
}

/** A Kubernetes ConfigMap volume: `..data` → a timestamped dir, the file → `..data/<file>`. */
function configMapDir(text: string): { dir: string; swap(next: string, stamp: string): void } {
  const dir = tempDir();
  mkdirSync(join(dir, '..2024_01_01'));
  writeFileSync(join(dir, '..2024_01_01', 'callgraph.yaml'), text);
  symlinkSync('..2024_01_01', join(dir, '..data'));
  symlinkSync('..data/callgraph.yaml', join(dir, 'callgraph.yaml'));
  return {
    dir,
    swap(next, stamp) {
      // What the kubelet does: write a new dir, point a temporary link at it, rename it over ..data.
      mkdirSync(join(dir, stamp));
      writeFileSync(join(dir, stamp, 'callgraph.yaml'), next);
      symlinkSync(stamp, join(dir, '..data_tmp'));
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    },
  };
}

describe('policy watcher', () => {
  it('loads the policy at start', () => {
    const path = join(tempDir(), 'callgraph.yaml');
    writeFileSync(path, FIXTURE);
    const { watcher } = watchFor(path);
    assert.equal(watcher.current()?.compiled.maxDepth, 4);
  });

  it('publishes an edit once it is valid and its digest differs', async () => {
    const path = join(tempDir(), 'callgraph.yaml');
    writeFileSync(path, FIXTURE);
    const { watcher, changes } = watchFor(path);
    writeFileSync(path, EDITED);
    await waitFor(async () => changes.length === 1, { timeoutMs: 3000, what: 'the edit' });
    assert.equal(watcher.current()?.compiled.maxDepth, 5);
  });

  it('does not publish an edit that leaves the policy the same (a comment)', (t) => {
    // What is tested is that nothing is published, which no event announces. Polling only, on
    // mock.timers: the re-read happens at a known tick, and the absence is asserted after it.
    t.mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
    const path = join(tempDir(), 'callgraph.yaml');
    writeFileSync(path, FIXTURE);
    const { changes } = watchFor(path, { fsWatch: false });
    writeFileSync(path, `# reviewed\n${FIXTURE}`);
    t.mock.timers.tick(200); // the poll sees the file changed
    t.mock.timers.tick(20); // the debounce re-reads it
    assert.equal(changes.length, 0);
    // The same ticks publish a real edit: the re-read above did happen.
    writeFileSync(path, EDITED);
    t.mock.timers.tick(200);
    t.mock.timers.tick(20);
    assert.equal(changes.length, 1);
  });

  it('keeps the last good policy through a bad edit and logs where the problem is', async () => {
    const path = join(tempDir(), 'callgraph.yaml');
    writeFileSync(path, FIXTURE);
    const { watcher, changes, lines } = watchFor(path);
    const digest = watcher.current()?.compiled.digest;
    writeFileSync(path, BROKEN);
    const logged = await waitFor(
      async () => lines.find((line) => line.msg === 'policy change refused: keeping the last good policy'),
      { timeoutMs: 3000, what: 'the refusal' },
    );
    assert.match(String((logged.problems as string[])[0]), /callgraph\.yaml:\d+:\d+: error /);
    assert.equal(watcher.current()?.compiled.digest, digest);
    assert.equal(changes.length, 0);
    writeFileSync(path, EDITED);
    await waitFor(async () => changes.length === 1, { timeoutMs: 3000, what: 'the fix' });
  });

  for (const target of ['directory', 'file'] as const) {
    it(`follows a ConfigMap-style ..data symlink swap, watching the ${target}`, async () => {
      const configMap = configMapDir(FIXTURE);
      const { watcher, changes } = watchFor(
        target === 'directory' ? configMap.dir : join(configMap.dir, 'callgraph.yaml'),
      );
      assert.equal(watcher.current()?.compiled.maxDepth, 4);
      configMap.swap(EDITED, '..2024_01_02');
      await waitFor(async () => changes.length === 1, { timeoutMs: 3000, what: 'the swap' });
      assert.equal(watcher.current()?.compiled.maxDepth, 5);
    });
  }

  it('notices changes by polling when fs.watch reports nothing', async () => {
    const path = join(tempDir(), 'callgraph.yaml');
    writeFileSync(path, FIXTURE);
    const { watcher, changes } = watchFor(path, { fsWatch: false, pollIntervalMs: 50 });
    writeFileSync(path, EDITED);
    await waitFor(async () => changes.length === 1, { timeoutMs: 3000, what: 'the poll' });
    assert.equal(watcher.current()?.compiled.maxDepth, 5);
  });

  it('starts without a policy when the first one is invalid, and picks up the fix', async () => {
    const path = join(tempDir(), 'callgraph.yaml');
    writeFileSync(path, BROKEN);
    const { watcher, changes, lines } = watchFor(path);
    assert.equal(watcher.current(), undefined);
    assert.ok(lines.some((line) => line.msg === 'policy not loaded: no valid policy yet'));
    writeFileSync(path, FIXTURE);
    await waitFor(async () => changes.length === 1, { timeoutMs: 3000, what: 'the fix' });
  });
});
