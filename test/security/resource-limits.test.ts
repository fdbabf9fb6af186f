/**
 * Resource limits one user could exhaust (issue #16), against real
 * sidecar processes: a deadline for the request body (408), a fair share
 * of the in-flight limit per user and per peer (429), and context handles
 * that no flood of tokens can use up (issue #23: they are sealed, not
 * stored, so there is no store to fill).
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { type SecurityMesh, startSecurityMesh } from '../helpers/security-mesh.ts';
import { FairShareExceededError, RequestTimeoutError, UnauthenticatedError } from '../../src/sidecar/errors.ts';
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
  socket.write(
    `POST /upload HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n0123456789`,
  );
  return { socket, answer };
}

const statusOf = (raw: string): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1] ?? 0);
const codeOf = (raw: string): string | undefined => (/"code":"([A-Z_]+)"/.exec(raw) ?? [])[1];
const reasonOf = (raw: string): string | undefined => (/"reason":"([a-z-]+)"/.exec(raw) ?? [])[1];

describe('resource limits one user could exhaust', { timeout: 120_000 }, () => {
  let mesh: SecurityMesh;

  before(async () => {
    mesh = await startSecurityMesh({
      sidecars: {
        // 8 slots: one user may hold 2, one peer 6.
        gateway: { inbound: { maxConcurrent: 8, subjectShare: 0.25, peerShare: 0.75, bodyTimeoutMs: BODY_TIMEOUT_MS } },
        // The store limits a deployment may still set: deprecated, ignored, warned about (a store this small filled at the fifth user).
        orders: { cache: { handleMaxEntries: 4, handleMaxPerSubject: 2 } },
      },
    });
  });
  after(async () => {
    await mesh?.stop();
  });

  async function gatewayGet(sub: string): Promise<{ status: number; code?: string }> {
    const r = await request(mesh.inbound('gateway', '/'), {
      headers: { authorization: `Bearer ${mesh.userToken({ sub })}` },
    });
    const text = await r.body.text();
    return {
      status: r.statusCode,
      ...(text.startsWith('{"type"') ? { code: (JSON.parse(text) as { code: string }).code } : {}),
    };
  }

  /**
   * Waits until the gateway has admitted `count` inbound requests (its in-flight gauge): a slow upload
   * holds its peer slot from admission, and its subject slot from the moment its token is verified,
   * just after. Polling with requests instead would take the very slots being counted.
   */
  async function admitted(count: number): Promise<void> {
    await waitFor(
      async () => {
        const r = await request(`http://127.0.0.1:${mesh.ports.gateway.admin}/metrics`);
        const text = await r.body.text();
        return Number(/^baton_inflight_requests\{direction="inbound"\} (\d+)$/m.exec(text)?.[1]) === count;
      },
      { what: `${count} requests in flight at the gateway`, timeoutMs: 5_000, intervalMs: 20 },
    );
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
      assert.deepEqual([codeOf(raw), reasonOf(raw)], [RequestTimeoutError.code, 'body']);
    }
    assert.ok(elapsed >= BODY_TIMEOUT_MS - 100 && elapsed < BODY_TIMEOUT_MS + 5_000, `answered after ${elapsed} ms`);
    // And the slots are free again.
    assert.equal((await gatewayGet('erin')).status, 200);
    assert.equal((await gatewayGet('alice')).status, 200);
  });

  it('gives every user a working context handle however many tokens flood in, and keeps every live one working (issue #23)', async () => {
    async function inbound(sub: string): Promise<{ status: number; code?: string; handle?: string }> {
      const r = await request(mesh.inbound('orders', '/orders'), {
        headers: { authorization: `Bearer ${mesh.meshToken('orders', ['gateway'], { sub })}` },
      });
      const text = await r.body.text();
      if (r.statusCode !== 200) return { status: r.statusCode, code: (JSON.parse(text) as { code: string }).code };
      return { status: 200, handle: mesh.apps.orders.seen.at(-1)?.headers['baton-context'] as string };
    }
    async function outbound(handle: string | undefined): Promise<{ status: number; code?: string }> {
      const r = await request(mesh.outbound('orders', '/charges'), {
        method: 'POST',
        headers: { host: 'payments', 'baton-context': handle ?? '' },
      });
      const text = await r.body.text();
      return {
        status: r.statusCode,
        ...(r.statusCode === 200 ? {} : { code: (JSON.parse(text) as { code: string }).code }),
      };
    }

    // Eight self-registered accounts with three tokens each: twice what the old store's limits held, and more per subject.
    const flood: Array<{ status: number; code?: string; handle?: string }> = [];
    for (let account = 0; account < 8; account++)
      for (let token = 0; token < 3; token++) flood.push(await inbound(`mallory-${account}`));
    assert.deepEqual(
      flood.filter((r) => r.status !== 200),
      [],
      'every flooding token got its handle',
    );
    // A new user still gets a handle, and it works; so does the first handle of the flood, and every other.
    const newcomer = await inbound('newcomer');
    assert.equal(newcomer.status, 200);
    for (const live of [newcomer, ...flood]) assert.deepEqual(await outbound(live.handle), { status: 200 });
    // A handle is good at this sidecar only while this process runs: an altered one is refused like a forged one.
    const altered = `${(newcomer.handle as string).slice(0, -8)}AAAAAAAA`;
    assert.deepEqual(await outbound(altered), { status: 401, code: UnauthenticatedError.code });
    // The retired limits are named once at start, not silently obeyed.
    const warnings = mesh.sidecars.orders
      .stdout()
      .split('\n')
      .filter((line) => line.includes('"event":"config_deprecated"'));
    assert.deepEqual(warnings.map((line) => (JSON.parse(line) as { key: string }).key).sort(), [
      'cache.handleMaxEntries',
      'cache.handleMaxPerSubject',
    ]);
  });
});
