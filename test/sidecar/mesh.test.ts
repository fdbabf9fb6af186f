import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import {
  compile,
  FakeSts,
  SHOP,
  startApp,
  startTestSidecar,
  type TestApp,
  type TestSidecar,
} from '../helpers/sidecar.ts';
import { PolicyDeniedError } from '../../src/policy/language/errors.ts';
import { waitFor } from '../helpers/net.ts';

const MB = 1024 * 1024;

/** 50 MB generated chunk by chunk, so the test itself never holds it in memory. */
function generated(bytes: number, progress: { sent: number } = { sent: 0 }): Readable {
  let sent = 0;
  const chunk = Buffer.alloc(64 * 1024, 'baton');
  return new Readable({
    read() {
      if (sent >= bytes) return this.push(null);
      const n = Math.min(chunk.length, bytes - sent);
      sent += n;
      progress.sent = sent;
      this.push(n === chunk.length ? chunk : chunk.subarray(0, n));
    },
  });
}

describe('sidecars in a chain', () => {
  const sts = new FakeSts();
  let gatewayApp: TestApp;
  let ordersApp: TestApp;
  let paymentsApp: TestApp;
  let gateway: TestSidecar;
  let orders: TestSidecar;
  let payments: TestSidecar;
  const held: Array<() => void> = [];
  const produced = { sent: 0 };
  let uploadStartedAt: number | undefined;
  const uploadSent = { sent: 0 };

  // Each app calls the next through its own sidecar's outbound port with the handle it was given.
  const relay =
    (next: () => { outbound: string; host: string; path: string }) => (req: IncomingMessage, res: ServerResponse) => {
      const target = next();
      const handle = String(req.headers['baton-context']);
      void request(`${target.outbound}${target.path}`, {
        method: 'POST',
        headers: { host: target.host, 'baton-context': handle, 'baton-subject': 'forged' },
      }).then(async (r) => {
        req.resume();
        res.writeHead(r.statusCode, { 'content-type': 'application/json' });
        res.end(await r.body.text());
      });
    };

  before(async () => {
    paymentsApp = await startApp(async (req, res) => {
      if (req.url === '/upload') {
        const hash = createHash('sha256');
        let bytes = 0;
        for await (const chunk of req) {
          uploadStartedAt ??= uploadSent.sent;
          hash.update(chunk as Buffer);
          bytes += (chunk as Buffer).length;
        }
        res.end(JSON.stringify({ bytes, sha256: hash.digest('hex') }));
        return;
      }
      if (req.url === '/download') {
        req.resume();
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        generated(50 * MB, produced).pipe(res);
        return;
      }
      if (req.url === '/slow') {
        req.resume();
        held.push(() => res.end(JSON.stringify({ slow: true })));
        return;
      }
      req.resume();
      res.end(
        JSON.stringify({
          chain: req.headers['baton-chain'],
          subject: req.headers['baton-subject'],
          caller: req.headers['baton-caller'],
          txn: req.headers['baton-txn'],
        }),
      );
    });
    payments = await startTestSidecar(sts, { service: 'payments', app: paymentsApp.url });
    ordersApp = await startApp(
      relay(() => ({ outbound: orders.url('outbound', ''), host: 'payments', path: '/charges' })),
    );
    orders = await startTestSidecar(sts, {
      service: 'orders',
      app: ordersApp.url,
      upstreams: { payments: payments.url('inbound', '') },
    });
    gatewayApp = await startApp(
      relay(() => ({ outbound: gateway.url('outbound', ''), host: 'orders', path: '/orders' })),
    );
    gateway = await startTestSidecar(sts, {
      service: 'gateway',
      app: gatewayApp.url,
      upstreams: { orders: orders.url('inbound', '') },
    });
  });
  after(async () => {
    for (const sidecar of [gateway, orders, payments]) await sidecar?.close();
    for (const app of [gatewayApp, ordersApp, paymentsApp]) await app?.close();
  });

  it('delivers the nested act chain gateway → orders to payments, with the user as subject', async () => {
    const token = sts.userToken('gateway', { sub: 'alice', scopes: ['shop', 'pay'], acr: 'mfa' });
    const response = await request(gateway.url('inbound', '/checkout'), {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(response.statusCode, 200);
    const body = (await response.body.json()) as Record<string, unknown>;
    assert.deepEqual(body, { chain: 'gateway,orders', subject: 'alice', caller: 'orders', txn: 'txn-1' });
  });

  it('refuses a forbidden edge at the caller’s sidecar before any exchange, and again at the callee', async () => {
    // gateway → payments is not in the call graph.
    const app = await startApp();
    const rogue = await startTestSidecar(sts, {
      service: 'gateway',
      app: app.url,
      upstreams: { payments: payments.url('inbound', '') },
    });
    try {
      const token = sts.userToken('gateway', { scopes: ['pay'], acr: 'mfa' });
      await (await request(rogue.url('inbound', '/'), { headers: { authorization: `Bearer ${token}` } })).body.dump();
      const handle = String(app.seen.at(-1)?.headers['baton-context']);
      const exchanges = sts.exchanges;
      const atCaller = await request(rogue.url('outbound', '/charges'), {
        method: 'POST',
        headers: { host: 'payments', 'baton-context': handle },
      });
      assert.equal(atCaller.statusCode, 403);
      assert.equal(((await atCaller.body.json()) as { code: string }).code, PolicyDeniedError.code);
      assert.equal(sts.exchanges, exchanges);
      // A token an STS minted for that edge anyway is refused by the callee.
      const forged = sts.meshToken('payments', ['gateway'], { scopes: ['pay'], acr: 'mfa' });
      const seen = paymentsApp.seen.length;
      const atCallee = await request(payments.url('inbound', '/charges'), {
        method: 'POST',
        headers: { authorization: `Bearer ${forged}` },
      });
      assert.equal(atCallee.statusCode, 403);
      await atCallee.body.dump();
      assert.equal(paymentsApp.seen.length, seen);
    } finally {
      await rogue.close();
      await app.close();
    }
  });

  it('streams a 50 MB upload and a 50 MB download through both sidecars without buffering them', async () => {
    const app = await startApp();
    const caller = await startTestSidecar(sts, {
      service: 'orders',
      app: app.url,
      upstreams: { payments: payments.url('inbound', '') },
    });
    const streamingPolicy = compile(
      SHOP.replace('paths: ["/charges"]', 'paths: ["/charges", "/upload", "/download"]').replace(
        'methods: [POST]',
        'methods: [POST, GET]',
      ),
    );
    caller.policy.swap(streamingPolicy);
    payments.policy.swap(streamingPolicy);
    try {
      const token = sts.meshToken('orders', ['gateway'], { scopes: ['pay'], acr: 'mfa' });
      await (
        await request(caller.url('inbound', '/orders'), { headers: { authorization: `Bearer ${token}` } })
      ).body.dump();
      const handle = String(app.seen.at(-1)?.headers['baton-context']);
      const baseline = process.memoryUsage().rss;
      let peak = baseline;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);

      const expected = createHash('sha256');
      for await (const chunk of generated(50 * MB)) expected.update(chunk as Buffer);
      const upload = await request(caller.url('outbound', '/upload'), {
        method: 'POST',
        headers: { host: 'payments', 'baton-context': handle },
        body: generated(50 * MB, uploadSent),
      });
      assert.equal(upload.statusCode, 200);
      assert.deepEqual(await upload.body.json(), { bytes: 50 * MB, sha256: expected.digest('hex') });
      // Streamed, not buffered: the app saw the first bytes long before the client had sent them all.
      assert.ok(
        uploadStartedAt !== undefined && uploadStartedAt < 20 * MB,
        `app saw the upload only after ${uploadStartedAt} bytes were sent`,
      );

      const download = await request(caller.url('outbound', '/download'), {
        method: 'GET',
        headers: { host: 'payments', 'baton-context': handle },
      });
      assert.equal(download.statusCode, 200);
      let bytes = 0;
      let checked = false;
      for await (const chunk of download.body) {
        bytes += (chunk as Buffer).length;
        if (!checked) {
          checked = true;
          // A client that stops reading stops the app: back-pressure runs through both sidecars.
          // A deliberate wait, not a gate: what is measured is how little the app produces meanwhile.
          await new Promise((r) => setTimeout(r, 300));
          assert.ok(
            produced.sent < 30 * MB,
            `app produced ${Math.round(produced.sent / MB)} MB while the client read one chunk`,
          );
        }
      }
      assert.equal(bytes, 50 * MB);
      clearInterval(sampler);
      // Everything (client, two sidecars, app) is in this process; buffering the bodies at each hop would cost 300 MB.
      assert.ok(
        peak - baseline < 150 * MB,
        `expected rss to grow by less than 150 MB, grew ${Math.round((peak - baseline) / MB)} MB`,
      );
    } finally {
      const shop = compile(SHOP);
      payments.policy.swap(shop);
      await caller.close();
      await app.close();
    }
  });

  it('swaps the policy under load without failing a request', async () => {
    const token = sts.meshToken('payments', ['gateway', 'orders'], { scopes: ['pay'], acr: 'mfa' });
    const statuses: number[] = [];
    let swapping = true;
    const swapper = (async () => {
      while (swapping) {
        payments.policy.swap(compile(SHOP));
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        for (let i = 0; i < 15; i++) {
          const r = await request(payments.url('inbound', '/charges'), {
            method: 'POST',
            headers: { authorization: `Bearer ${token}` },
          });
          await r.body.dump();
          statuses.push(r.statusCode);
        }
      }),
    );
    swapping = false;
    await swapper;
    assert.equal(statuses.length, 300);
    assert.deepEqual([...new Set(statuses)], [200]);
  });

  it('on close turns not ready at once, lets in-flight requests finish and refuses new connections', async () => {
    let arrived = 0;
    const app = await startApp(async (req, res) => {
      arrived++;
      req.resume();
      // A slow app: the requests are still in flight when close() starts.
      await new Promise((r) => setTimeout(r, 300));
      res.end('finished');
    });
    const draining = await startTestSidecar(sts, { service: 'orders', app: app.url });
    try {
      const token = sts.meshToken('orders', ['gateway']);
      const inflight = Array.from({ length: 5 }, () =>
        request(draining.url('inbound', '/orders'), { headers: { authorization: `Bearer ${token}` } }),
      );
      await waitFor(async () => arrived === 5, {
        what: 'five requests inside the app',
        timeoutMs: 5_000,
        intervalMs: 5,
      });
      const closed = draining.sidecar.close(5_000);
      assert.equal(draining.sidecar.ready(), false);
      const responses = await Promise.all(inflight);
      assert.deepEqual(
        responses.map((r) => r.statusCode),
        [200, 200, 200, 200, 200],
      );
      assert.deepEqual(await Promise.all(responses.map((r) => r.body.text())), Array(5).fill('finished'));
      await closed;
      await assert.rejects(
        request(draining.url('inbound', '/orders'), { headers: { authorization: `Bearer ${token}` } }),
      );
    } finally {
      await app.close();
    }
  });
});
