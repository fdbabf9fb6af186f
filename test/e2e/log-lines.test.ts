import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startMesh } from '../../src/demo/mesh.ts';
import { postInbound, runScenarios } from '../../src/demo/scenario.ts';
import { auditLinesOf } from '../helpers/audit-lines.ts';
import { parseStrictJson, StrictJsonError } from '../helpers/strict-json.ts';

describe('the strict JSON parser the log test relies on', () => {
  it('refuses a line that names a key twice, which JSON.parse accepts', () => {
    const line = '{"level":"info","service":"orders","direction":"inbound","service":"orders"}';
    assert.doesNotThrow(() => JSON.parse(line));
    assert.throws(
      () => parseStrictJson(line),
      (error: unknown) => error instanceof StrictJsonError && error.code === 'STRICT_JSON',
    );
  });

  it('refuses a repeated key in a nested object, and accepts the same key at two levels', () => {
    assert.throws(() => parseStrictJson('{"err":{"code":1,"code":2}}'), StrictJsonError);
    assert.deepEqual(parseStrictJson('{"code":"a","err":{"code":"b"},"list":[1,2.5e3,true,null,"x\\u00e9"]}'), {
      code: 'a',
      err: { code: 'b' },
      list: [1, 2500, true, null, 'xé'],
    });
  });
});

describe('every log line of a running mesh', { timeout: 90_000 }, () => {
  const logDir = mkdtempSync(join(tmpdir(), 'baton-log-lines-'));
  let lines: Array<{ file: string; text: string }> = [];

  before(async () => {
    const mesh = await startMesh({ logDir });
    try {
      await runScenarios(mesh);
      // Refusals write lines of their own: a bad token at the entry, and a scope the policy refuses.
      await postInbound(mesh.services.gateway.entry, '/checkout', 'Bearer not-a-token');
      await postInbound(
        mesh.services.gateway.entry,
        '/checkout',
        `Bearer ${await mesh.userToken({ sub: 'bob', scope: 'shop' })}`,
      );
    } finally {
      // stop() returns once every process's output is read and in its log file.
      await mesh.stop();
    }
    lines = readdirSync(logDir).flatMap((file) =>
      readFileSync(join(logDir, file), 'utf8')
        .split('\n')
        .filter((text) => text.trim() !== '')
        .map((text) => ({ file, text })),
    );
  });
  after(() => rmSync(logDir, { recursive: true, force: true }));

  it('parses with a strict parser that refuses duplicate keys', () => {
    assert.ok(lines.length > 20, `expected the mesh to have logged, got ${lines.length} lines`);
    const bad = lines.flatMap(({ file, text }) => {
      try {
        const value = parseStrictJson(text);
        return typeof value === 'object' && value !== null && !Array.isArray(value)
          ? []
          : [`${file}: not a JSON object: ${text.slice(0, 200)}`];
      } catch (error) {
        return [`${file}: ${(error as Error).message}: ${text.slice(0, 200)}`];
      }
    });
    assert.deepEqual(bad, []);
  });

  it('includes the audit lines of every sidecar, each naming its service and direction once', () => {
    const decisions = lines
      .map(({ text }) => parseStrictJson(text) as Record<string, unknown>)
      .filter((line) => line.event === 'decision');
    for (const service of ['gateway', 'orders', 'payments']) {
      assert.ok(
        decisions.some((d) => d.service === service && d.direction === 'inbound'),
        `no inbound decision line from ${service}`,
      );
    }
    assert.ok(decisions.some((d) => d.direction === 'outbound'));
  });

  it('writes every audit line in the one schema that baton audit and policy observed read', () => {
    const audit = auditLinesOf(lines.map(({ text }) => text).join('\n'));
    const seen = new Set(audit.map((l) => `${l.audit.component}/${l.audit.event}`));
    for (const kind of ['sidecar/decision', 'sts/token_issued'])
      assert.ok(seen.has(kind), `no ${kind} line among ${[...seen].join(', ')}`);
    // The demo's denied chain stops at the caller's sidecar with the status the app got.
    assert.ok(audit.some((l) => l.audit.event === 'decision' && l.audit.decision === 'deny' && l.audit.status === 403));
  });
});
