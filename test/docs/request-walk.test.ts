/**
 * docs/design.md ("One request, few rooms") lists the src/ files one warm,
 * allowed inbound request runs in; scripts/request-walk.ts measures them
 * with V8's precise coverage on a real sidecar. A change that sends the
 * request through another module, or takes one away, fails here until the
 * page says so.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function documented(): string[] {
  const page = readFileSync(join(ROOT, 'docs/design.md'), 'utf8');
  const start = page.indexOf('<!-- request-walk:start -->');
  const end = page.indexOf('<!-- request-walk:end -->');
  assert.ok(start !== -1 && end > start, 'docs/design.md: expected the request-walk markers');
  return page
    .slice(start, end)
    .split('\n')
    .filter((line) => line.startsWith('- '))
    .map((line) => line.slice(2).trim());
}

function measure(): Promise<{ status: number; files: string[] }> {
  const coverage = mkdtempSync(join(tmpdir(), 'baton-walk-'));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'scripts/request-walk.ts')], {
      env: { ...process.env, NODE_V8_COVERAGE: coverage },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      rmSync(coverage, { recursive: true, force: true });
      if (code !== 0) reject(new Error(`scripts/request-walk.ts exited ${code}: ${err.slice(-2000)}`));
      else resolve(JSON.parse(out) as { status: number; files: string[] });
    });
  });
}

describe('one inbound request, measured', () => {
  it('runs in exactly the src/ files docs/design.md lists', { timeout: 120_000 }, async () => {
    const measured = await measure();
    assert.equal(measured.status, 200, 'the measured request was allowed');
    assert.deepEqual(
      measured.files,
      documented(),
      'docs/design.md "One request, few rooms" is out of date: run NODE_V8_COVERAGE=$(mktemp -d) node scripts/request-walk.ts',
    );
  });
});
