/**
 * Resource limits one user could exhaust (issue #16), against real
 * sidecar processes: a deadline for the request body (408), a fair share
 * of the in-flight limit per user and per peer (429), and a context-handle
 * store that evicts expired handles first, bounds handles per subject and
 * refuses new handles rather than drop live ones (503).
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { type SecurityMesh, startSecurityMesh } from './mesh-fixture.ts';
import { FairShareExceededError, HandlesExhaustedError, RequestBodyTimeoutError } from '../../src/sidecar/errors.ts';
import { waitFor } from '../helpers/net.ts';

const BODY_TIMEOUT_MS = 3_000;

/** A POST whose body never finishes: headers and a few bytes, then silence. Resolves with the raw answer once the sidecar closes. */
function trickle(port: number, token: string): { socket: Socket; answer: Promise<string> } {
  const socket = connect(port, '127.0.0.1');
  const answer = new Promise<string>((resolve) => {
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('close', () => resolve(data));
    socket.on('error', () => undefined);
    // Bounded: without a deadline nothing would ever answer (the app timeout starts once the body is sent).
    setTimeout(() => socket.destroy(), BODY_TIMEOUT_MS + 5_000).unref();
  });
  socket.write(`POST /upload HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n0123456789`);
  return { socket, answer };
}

const statusOf = (raw: string): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1] ?? 0);
const codeOf = (raw: string): string | undefined => (/"code":"([A-Z_]+)"/.exec(raw) ?? [])[1];

describe('resource limits one user could exhaust', { timeout: 120_000 }, () => {
  let mesh: SecurityMesh;

  before(async () => {
    mesh = await startSecurityMesh({
      sidecars: {
        // 8 slots: one user may hold 2, one peer 6.
        gateway: { inbound: { maxConcurrent: 8, subjectShare: 0.25, peerShare: 0.75, bodyTimeoutMs: BODY_TIMEOUT_MS } },
        orders: { cache: { handleMaxEntries: 4, handleMaxPerSubject: 2 } },
      },
    });
  });
  after(async () => {
    await mesh?.stop();
  });

  async function gatewayGet(sub: string): Promise<{ status: number; code?: string }> {
    const r = await request(mesh.inbound('gateway', '/'), { headers: { authorization: `Bearer ${mesh.userToken({ sub })}` } });
    const text = await r.body.text();
    return { status: r.statusCode, ...(text.startsWith('{"type"') ? { code: (JSON.parse(text) as { code: string }).code } : {}) };
  }

  /**
   * Waits until the gateway has admitted `count` inbound requests (its in-flight gauge): a slow upload
   * holds its peer slot from admission, and its subject slot from the moment its token is verified,
   * just after. Polling with requests instead would take the very slots being counted.
   */
  async function admitted(count: number): Promise<void> {
    await waitFor(async () => {
      const r = await request(`http://127.0.0.1:${mesh.ports.gateway.admin}/metrics`);
      const text = await r.body.text();
      return Number(/^baton_inflight_requests\{direction="inbound"\} (\d+)$/m.exec(text)?.[1]) === count;
    }, { what: `${count} requests in flight at the gateway`, timeoutMs: 5_000, intervalMs: 20 });
  }

  it('answers 408 to a body still arriving at the deadline, and shares the in-flight limit per user and per peer meanwhile', async () => {
    const port = mesh.ports.gateway.inbound;
    const started = Date.now();
    const slow = [trickle(port, mesh.userToken({ sub: 'alice' })), trickle(port, mesh.userToken({ sub: 'alice' }))];
    await admitted(2);
    // alice holds her share (2 of 8): her next request is refused at once, anyone else's goes through.
    assert.deepEqual(await gatewayGet('alice'), { status: 429, code: FairShareExceededError.code });
    assert.equal((await gatewayGet('bob')).status, 200);
    // Four more slow uploads from the same address, as two other users: the peer now holds its share (6 of 8).
    slow.push(...['carol', 'carol', 'dave', 'dave'].map((sub) => trickle(port, mesh.userToken({ sub }))));
    await admitted(6);
    assert.deepEqual(await gatewayGet('erin'), { status: 429, code: FairShareExceededError.code });

    // At the deadline every trickling request is answered 408 and its connection closed.
    const answers = await Promise.all(slow.map((s) => s.answer));
    const elapsed = Date.now() - started;
    for (const raw of answers) {
      assert.equal(statusOf(raw), 408, raw.slice(0, 200));
      assert.equal(codeOf(raw), RequestBodyTimeoutError.code);
    }
    assert.ok(elapsed >= BODY_TIMEOUT_MS - 100 && elapsed < BODY_TIMEOUT_MS + 5_000, `answered after ${elapsed} ms`);
    // And the slots are free again.
    assert.equal((await gatewayGet('erin')).status, 200);
    assert.equal((await gatewayGet('alice')).status, 200);
  });

  it('keeps every live context handle: expired ones go first, a subject replaces only its own, a full store refuses new ones', async () => {
    const nowSec = (): number => Math.floor(Date.now() / 1000);
    let retryAfter: unknown;
    async function inbound(sub: string, exp?: number): Promise<{ status: number; code?: string; handle?: string }> {
      const token = mesh.meshToken('orders', ['gateway'], { sub, ...(exp === undefined ? {} : { exp }) });
      const r = await request(mesh.inbound('orders', '/orders'), { headers: { authorization: `Bearer ${token}` } });
      const text = await r.body.text();
      retryAfter = r.headers['retry-after'];
      if (r.statusCode !== 200) return { status: r.statusCode, code: (JSON.parse(text) as { code: string }).code };
      return { status: 200, handle: mesh.apps.orders.seen.at(-1)?.headers['baton-context'] as string };
    }
    async function outbound(handle: string | undefined): Promise<number> {
      const r = await request(mesh.outbound('orders', '/charges'), { method: 'POST', headers: { host: 'payments', 'baton-context': handle ?? '' } });
      await r.body.dump();
      return r.statusCode;
    }

    const a1 = await inbound('alice');
    const a2 = await inbound('alice');
    const b1 = await inbound('bob');
    const shortLived = await inbound('erin', nowSec() + 2);
    // The store (4) is full. alice's third replaces her own least recently used, nobody else's.
    const a3 = await inbound('alice');
    assert.equal(a3.status, 200);
    assert.equal(await outbound(a1.handle), 401);
    // Full of live handles: a new subject is refused, and every live handle still works.
    assert.deepEqual(await inbound('dave'), { status: 503, code: HandlesExhaustedError.code });
    // Retry-After says when the oldest handle (erin's, her token expires within 2 s) frees room.
    assert.ok(retryAfter === '1' || retryAfter === '2', `Retry-After ${String(retryAfter)}`);
    for (const live of [a2, a3, b1, shortLived]) assert.equal(await outbound(live.handle), 200);
    // Once erin's token has expired, her handle is the one that makes room. A deliberate wait: expiry is
    // by the sidecar's wall clock, which a test of real processes cannot move.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, (nowSec() + 3) * 1000 - Date.now())));
    const d1 = await inbound('dave');
    assert.equal(d1.status, 200);
    for (const live of [a2, a3, b1, d1]) assert.equal(await outbound(live.handle), 200);
  });
});
