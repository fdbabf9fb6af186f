import assert from 'node:assert/strict';
import { it } from 'node:test';
import { request } from 'undici';
import { fetchReadsEnvProxy, startDemoApp } from '../../src/demo/apps.ts';

it("the payments demo app answers the benchmarks' GET /bench with 200, and an unknown route with 404", async (t) => {
  // The outbound is never called on these routes; a closed port makes any call fail loudly.
  const app = await startDemoApp({ name: 'payments', outbound: 'http://127.0.0.1:9' });
  t.after(() => app.close());
  const bench = await request(`http://127.0.0.1:${app.port}/bench`);
  await bench.body.dump();
  assert.equal(
    bench.statusCode,
    200,
    'every benchmark that drives the demo mesh warms up on GET /bench and stops on a non-2xx',
  );
  const unknown = await request(`http://127.0.0.1:${app.port}/nowhere`);
  await unknown.body.dump();
  assert.equal(unknown.statusCode, 404);
});

it('every demo app answers GET /livez and /readyz with 200, the paths docker-compose.yml health-checks, and GET / with 404', async (t) => {
  for (const name of ['gateway', 'orders', 'payments'] as const) {
    const app = await startDemoApp({ name, outbound: 'http://127.0.0.1:9' });
    t.after(() => app.close());
    for (const path of ['/livez', '/readyz']) {
      const answer = await request(`http://127.0.0.1:${app.port}${path}`);
      assert.equal(answer.statusCode, 200, `${name} ${path}`);
      assert.equal(await answer.body.text(), 'ok\n');
    }
    const root = await request(`http://127.0.0.1:${app.port}/`);
    await root.body.dump();
    assert.equal(root.statusCode, 404, `${name} has no route at /`);
  }
});

it('knows which Node.js fetch reads NODE_USE_ENV_PROXY (24.0 and 22.21 on), so baton demo app installs the proxy agent only before', () => {
  assert.deepEqual(
    ['22.18.0', '22.20.9', '22.21.0', '22.22.1', '23.11.0', '24.0.0', '24.21.0', '26.1.0'].map((v) => [
      v,
      fetchReadsEnvProxy(v),
    ]),
    [
      ['22.18.0', false],
      ['22.20.9', false],
      ['22.21.0', true],
      ['22.22.1', true],
      ['23.11.0', false],
      ['24.0.0', true],
      ['24.21.0', true],
      ['26.1.0', true],
    ],
  );
});
