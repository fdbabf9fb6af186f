/**
 * freePort's reservations hold across processes, as they must when test files
 * and the parts of a mesh draw ports at once (the rest of freePort:
 * test/demo/free-port.test.ts).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { freePort, reserve } from '../../src/demo/free-port.ts';

describe('freePort across processes', () => {
  it('honours a reservation made by another process', async () => {
    // Another process (a real one) reserves a port nobody holds yet, and says which.
    const script = `import('${new URL('../../src/demo/free-port.ts', import.meta.url).href}').then((m) => { for (;;) { const p = 17000 + Math.floor(Math.random() * 10000); if (m.reserve(p)) { process.stdout.write(String(p)); return; } } })`;
    const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    const port = Number(child.stdout);
    assert.ok(Number.isInteger(port) && port >= 17_000, child.stderr);
    assert.equal(reserve(port), false);
    let draws = 0;
    const got = await freePort(() => (draws++ === 0 ? (port - 10_000 + 0.5) / (32_768 - 10_000) : Math.random()));
    assert.notEqual(got, port);
    assert.ok(draws >= 2, 'the port reserved elsewhere was drawn and passed over');
  });
});
