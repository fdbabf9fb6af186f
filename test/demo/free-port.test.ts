import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:http';
import { describe, it } from 'node:test';
import {
  FETCH_BAD_PORTS,
  freePort,
  isFetchablePort,
  listenOnLoopback,
  RESERVATION_MS,
  RESERVATIONS_DIR,
  reserve,
} from '../../src/demo/free-port.ts';

/** The bad-ports list that undici (the dependency, and Node's fetch) enforces, read from its source. */
function undiciBadPorts(): Set<number> {
  const source = readFileSync(new URL('../../node_modules/undici/lib/web/fetch/constants.js', import.meta.url), 'utf8');
  const list = /const badPorts = [^[]*\[([^\]]*)\]/.exec(source);
  assert.ok(
    list,
    'undici no longer declares badPorts in lib/web/fetch/constants.js: re-check the Fetch port-blocking list',
  );
  return new Set([...list[1]!.matchAll(/'(\d+)'/g)].map((m) => Number(m[1])));
}

describe('freePort', () => {
  it('knows every port that undici and fetch() refuse', () => {
    for (const port of undiciBadPorts())
      assert.ok(FETCH_BAD_PORTS.has(port), `port ${port} is blocked by fetch but not listed`);
    assert.equal(isFetchablePort(10080), false);
    assert.equal(isFetchablePort(10081), true);
  });

  it('fetch() itself refuses 10080, which lies in the range freePort draws from', async () => {
    await assert.rejects(fetch('http://127.0.0.1:10080/'), (error: Error & { cause?: Error }) =>
      /bad port/.test(String(error.cause?.message)),
    );
  });

  it('never returns a port that fetch() refuses, even when the random draw lands on one', async () => {
    // The first draws land on 10080 (floor 10 000 + 80); the picker must move on.
    const draws = [80, 80, 80];
    let call = 0;
    const port = await freePort(() =>
      call < draws.length ? draws[call++]! / (32_768 - 10_000) : (call++, Math.random()),
    );
    assert.notEqual(port, 10080);
    assert.ok(isFetchablePort(port));
    assert.ok(call >= 4, 'the bad port was drawn and skipped');
  });

  it('listenOnLoopback binds a port that fetch() accepts', async () => {
    const server = createServer((_request, response) => response.writeHead(204, { connection: 'close' }).end());
    const port = await listenOnLoopback(server);
    try {
      assert.ok(isFetchablePort(port));
      assert.equal((await fetch(`http://127.0.0.1:${port}/`)).status, 204);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('freePort reservations across processes', () => {
  it('never hands out one port twice inside the window, even to the same draw', async () => {
    const first = await freePort();
    let draws = 0;
    const second = await freePort(() => (draws++ === 0 ? (first - 10_000 + 0.5) / (32_768 - 10_000) : Math.random()));
    assert.notEqual(second, first);
    assert.equal(draws >= 2, true, 'the reserved port was drawn and passed over');
  });

  // A reservation made by another process: test/e2e/free-port-across-processes.test.ts.

  it('takes over a reservation older than the window', () => {
    // A port nobody on the machine holds now (other test files reserve ports as this one runs).
    let port = 0;
    for (let tries = 0; tries < 100 && port === 0; tries++) {
      const candidate = 10_000 + 7_000 + Math.floor(Math.random() * 10_000);
      if (reserve(candidate)) port = candidate;
    }
    assert.notEqual(port, 0, 'found an unreserved port');
    assert.equal(reserve(port), false);
    assert.equal(reserve(port, Date.now() + RESERVATION_MS + 1_000), true);
    assert.ok(existsSync(join(RESERVATIONS_DIR, String(port))));
  });
});
