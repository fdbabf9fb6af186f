import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { createLineWriter } from '../../src/telemetry/line-writer.ts';

describe('the batching line writer (#28)', () => {
  let dir: string;
  let file: string;
  let fd: number;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'baton-line-writer-'));
    file = join(dir, 'log');
    fd = openSync(file, 'w');
  });

  afterEach(() => {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  });

  it('holds lines until a batch has gathered, then writes them in one write, in order', () => {
    const writer = createLineWriter({ fd, batchBytes: 30, flushMs: 60_000 });
    writer.write('one\n');
    writer.write('two\n');
    assert.equal(readFileSync(file, 'utf8'), '', 'nothing written before the batch is full');
    writer.write('a line long enough to fill the batch\n');
    assert.equal(readFileSync(file, 'utf8'), 'one\ntwo\na line long enough to fill the batch\n');
    writer.close();
  });

  it('writes every held line on flushSync, as the exit hook does', () => {
    const writer = createLineWriter({ fd, batchBytes: 1 << 20, flushMs: 60_000 });
    const lines = Array.from({ length: 1000 }, (_, i) => `{"n":${i}}\n`);
    for (const line of lines) writer.write(line);
    writer.flushSync();
    assert.equal(readFileSync(file, 'utf8'), lines.join(''));
    writer.close();
  });

  it('writes lines beyond ASCII whole (bytes, not characters, decide a short write)', () => {
    const writer = createLineWriter({ fd, batchBytes: 1, flushMs: 60_000 });
    writer.write('é ☃ 𝄞\n');
    assert.equal(readFileSync(file, 'utf8'), 'é ☃ 𝄞\n');
    writer.close();
  });

  it('writes what it holds on close and ignores lines after it', () => {
    const writer = createLineWriter({ fd, batchBytes: 1 << 20, flushMs: 60_000 });
    writer.write('held\n');
    writer.close();
    assert.equal(writer.write('late\n'), false);
    assert.equal(readFileSync(file, 'utf8'), 'held\n');
  });

  it('answers pino’s flush(cb) after writing', () => {
    const writer = createLineWriter({ fd, batchBytes: 1 << 20, flushMs: 60_000 });
    writer.write('x\n');
    let called = false;
    writer.flush((error) => {
      assert.equal(error, undefined);
      called = true;
    });
    assert.ok(called);
    assert.equal(readFileSync(file, 'utf8'), 'x\n');
    writer.close();
  });
});

describe('the batching line writer in a quiet process', () => {
  it('writes held lines flushMs after the first, without waiting for a full batch', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-line-writer-'));
    const file = join(dir, 'log');
    const fd = openSync(file, 'w');
    t.after(() => {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    });
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const writer = createLineWriter({ fd, batchBytes: 1 << 20, flushMs: 200 });
    writer.write('quiet\n');
    t.mock.timers.tick(199);
    assert.equal(readFileSync(file, 'utf8'), '');
    t.mock.timers.tick(1);
    assert.equal(readFileSync(file, 'utf8'), 'quiet\n');
    writer.close();
  });
});
