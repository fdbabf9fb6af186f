import assert from 'node:assert/strict';
import { it } from 'node:test';
import { request } from 'undici';
import { startDemoApp } from '../../src/demo/apps.ts';

it('the payments demo app answers the benchmarks\' GET /bench with 200, and an unknown route with 404', async (t) => {
  // The outbound is never called on these routes; a closed port makes any call fail loudly.
  const app = await startDemoApp({ name: 'payments', outbound: 'http://127.0.0.1:9' });
  t.after(() => app.close());
  const bench = await request(`http://127.0.0.1:${app.port}/bench`);
  await bench.body.dump();
  assert.equal(bench.statusCode, 200, 'every benchmark that drives the demo mesh warms up on GET /bench and stops on a non-2xx');
  const unknown = await request(`http://127.0.0.1:${app.port}/nowhere`);
  await unknown.body.dump();
  assert.equal(unknown.statusCode, 404);
});
