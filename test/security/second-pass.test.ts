/**
 * The second attack pass (issue #16) against the running mesh of
 * test/helpers/security-mesh.ts: path normalisation tricks, headers the app must not
 * trust, and token lifetime edges at the STS. Each case is a class, not
 * one example; every refused case also shows the app saw nothing.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { type SecurityMesh, startSecurityMesh } from '../helpers/security-mesh.ts';
import { BadRequestError } from '../../src/core/errors.ts';
import { PolicyDeniedError } from '../../src/policy/language/errors.ts';
import { SubjectTokenInvalidError } from '../../src/sts/errors.ts';
import { TokenExpiredError } from '../../src/token/errors.ts';

const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

/** One raw request (bytes as given, no client normalisation); the status and the problem code. */
async function rawRequest(
  port: number,
  target: Buffer | string,
  headers: Record<string, string>,
): Promise<{ status: number; code?: string; reason?: string; pathClass?: string }> {
  const head = Buffer.concat([
    Buffer.from('GET '),
    Buffer.isBuffer(target) ? target : Buffer.from(target, 'latin1'),
    Buffer.from(
      ` HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n${Object.entries(headers)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('')}\r\n`,
    ),
  ]);
  const answer = await new Promise<string>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('end', () => resolve(data));
    socket.on('error', (error) => (data === '' ? reject(error) : resolve(data)));
    socket.setTimeout(5_000, () => socket.destroy(new Error('no answer in 5 s')));
    socket.write(head);
  });
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);
  const body = answer.slice(answer.indexOf('\r\n\r\n') + 4);
  const problem = body.startsWith('{')
    ? (JSON.parse(body) as { code?: string; reason?: string; pathClass?: string })
    : {};
  return {
    status,
    ...(problem.code === undefined ? {} : { code: problem.code }),
    ...(problem.reason === undefined ? {} : { reason: problem.reason }),
    ...(problem.pathClass === undefined ? {} : { pathClass: problem.pathClass }),
  };
}

describe('second attack pass: paths, untrusted headers, lifetimes', { timeout: 120_000 }, () => {
  let mesh: SecurityMesh;

  before(async () => {
    mesh = await startSecurityMesh();
  });
  after(async () => {
    await mesh?.stop();
  });

  const nowSec = (): number => Math.floor(Date.now() / 1000);

  it('refuses at the STS a subject token whose exp is not in the future, inside the clock tolerance, with invalid_request', async () => {
    for (const exp of [nowSec() - 5, nowSec()]) {
      const subject = mesh.meshToken('orders', ['gateway'], { exp });
      const r = await mesh.exchange('orders', {
        grant_type: TOKEN_EXCHANGE,
        subject_token: subject,
        subject_token_type: ACCESS_TOKEN,
        audience: 'payments',
      });
      assert.equal(r.status, 400, `exp ${exp - nowSec()} s`);
      assert.equal(r.body.error, 'invalid_request');
      assert.deepEqual([r.body.code, r.body.reason], [SubjectTokenInvalidError.code, TokenExpiredError.code]);
      assert.equal(r.body.access_token, undefined);
    }
    // One second left: minted, and expires_in is never above what is left nor below 1.
    const live = mesh.meshToken('orders', ['gateway'], { exp: nowSec() + 2 });
    const ok = await mesh.exchange('orders', {
      grant_type: TOKEN_EXCHANGE,
      subject_token: live,
      subject_token_type: ACCESS_TOKEN,
      audience: 'payments',
    });
    assert.equal(ok.status, 200);
    assert.ok(
      typeof ok.body.expires_in === 'number' && ok.body.expires_in >= 1 && ok.body.expires_in <= 2,
      `expires_in ${String(ok.body.expires_in)}`,
    );
  });

  it('strips method-override headers and sets Forwarded, X-Forwarded-Host/-Proto and X-Real-IP itself, whatever the caller sent', async () => {
    const r = await request(mesh.inbound('orders', '/orders'), {
      method: 'GET',
      headers: [
        'authorization',
        `Bearer ${mesh.meshToken('orders', ['gateway'])}`,
        'X-HTTP-Method-Override',
        'DELETE',
        'x-http-method',
        'PUT',
        'X-Method-Override',
        'PATCH',
        'x-http-method-override',
        'DELETE',
        'Forwarded',
        'for=10.0.0.1;host=admin.internal;proto=https',
        'forwarded',
        'for=10.0.0.2',
        'X-Forwarded-Host',
        'admin.internal',
        'X-Forwarded-Proto',
        'https',
        'X-Real-IP',
        '10.0.0.1',
        'x-real-ip',
        '10.0.0.3',
      ],
    });
    await r.body.dump();
    assert.equal(r.statusCode, 200);
    const seen = mesh.apps.orders.seen.at(-1);
    assert.ok(seen);
    assert.equal(seen.method, 'GET');
    const names = seen.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    for (const name of ['x-http-method-override', 'x-http-method', 'x-method-override'])
      assert.equal(names.includes(name), false, name);
    for (const name of ['forwarded', 'x-forwarded-host', 'x-forwarded-proto', 'x-real-ip'])
      assert.equal(names.filter((n) => n === name).length, 1, name);
    const host = `127.0.0.1:${mesh.ports.orders.inbound}`;
    assert.equal(seen.headers['x-real-ip'], '127.0.0.1');
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.equal(seen.headers['x-forwarded-host'], host);
    assert.equal(seen.headers.forwarded, `for=127.0.0.1;proto=http;host="${host}"`);
    assert.ok(!JSON.stringify(seen.headers).includes('admin.internal'));
  });

  describe('path normalisation', () => {
    // orders accepts gateway on /orders and /orders/**: a path the app could read as /admin must not get through.
    const refused: Array<[string | Buffer, string]> = [
      ['/orders/..;/admin', 'dot-segment'],
      ['/orders/%2e%2e;/admin', 'dot-segment'],
      ['/orders/%2E%2e;jsessionid=1/admin', 'dot-segment'],
      ['/orders/.;/x', 'dot-segment'],
      ['/orders/../admin', 'dot-segment'],
      ['/orders/%2e%2e/admin', 'dot-segment'],
      ['/orders/%EF%BC%8E%EF%BC%8E/admin', 'dot-segment'],
      ['/orders/%E2%80%A5/admin', 'dot-segment'],
      ['/orders/%252e%252e/admin', 'double-encoding'],
      ['/orders/%252e%252e%253b/admin', 'double-encoding'],
      ['/orders/1%00.json', 'control-character'],
      ['/orders/1%0d%0aX-Injected:%201', 'control-character'],
      ['/orders/%C0%AE%C0%AE/admin', 'invalid-encoding'],
      ['/orders/%E0%80%AE/admin', 'invalid-encoding'],
      ['/orders/%ED%A0%80', 'invalid-encoding'],
      ['/orders/%zz', 'invalid-encoding'],
      ['/orders/..%5Cadmin', 'backslash'],
      ['/orders/%EF%BC%BCadmin', 'backslash'],
      [Buffer.from('/orders/\xef\xbc\x8e\xef\xbc\x8e/admin', 'latin1'), 'raw-non-ascii'],
    ];
    const unmatched = [
      '/orders/1;jsessionid=x',
      '/orders/1%3Bx',
      '/orders/a%2Fb',
      '/orders/%EF%BC%8Fadmin',
      '/orders//1',
      '/orders/100%25',
      '/orders/%EF%BC%A1',
    ];

    it('refuses every ambiguous spelling of a path with 400 BATON_BAD_REQUEST, reason ambiguous-path, naming its class; the app sees nothing', async () => {
      const token = mesh.meshToken('orders', ['gateway']);
      const before = mesh.apps.orders.hits;
      for (const [target, pathClass] of refused) {
        const r = await rawRequest(mesh.ports.orders.inbound, target, { authorization: `Bearer ${token}` });
        // Raw bytes above 0x7F are refused by the HTTP parser itself (llhttp), before the sidecar's own check.
        if (pathClass === 'raw-non-ascii') assert.equal(r.status, 400);
        else
          assert.deepEqual(
            r,
            { status: 400, code: BadRequestError.code, reason: 'ambiguous-path', pathClass },
            String(target),
          );
      }
      assert.equal(mesh.apps.orders.hits, before);
    });

    it('keeps path parameters, encoded slashes, empty segments, literal % and compatibility characters from matching any paths pattern', async () => {
      const token = mesh.meshToken('orders', ['gateway']);
      const before = mesh.apps.orders.hits;
      for (const target of unmatched) {
        const r = await rawRequest(mesh.ports.orders.inbound, target, { authorization: `Bearer ${token}` });
        assert.deepEqual(r, { status: 403, code: PolicyDeniedError.code, reason: 'path' }, target);
      }
      assert.equal(mesh.apps.orders.hits, before);
      // Honest percent-encoding still matches, decoded once on both sides.
      for (const target of ['/orders/caf%C3%A9', '/orders/a%20b', '/orders/%31']) {
        assert.equal(
          (await rawRequest(mesh.ports.orders.inbound, target, { authorization: `Bearer ${token}` })).status,
          200,
          target,
        );
      }
      assert.equal(mesh.apps.orders.hits, before + 3);
    });

    it('refuses the same classes on the outbound port before any exchange', async () => {
      const token = mesh.meshToken('orders', ['gateway']);
      const r = await request(mesh.inbound('orders', '/orders'), { headers: { authorization: `Bearer ${token}` } });
      await r.body.dump();
      const handle = mesh.apps.orders.seen.at(-1)?.headers['baton-context'] as string;
      const before = mesh.apps.payments.hits;
      for (const target of ['/charges/..;/admin', '/charges/%252e%252e/admin', '/charges/%C0%AE%C0%AE']) {
        const out = await request(mesh.outbound('orders', target), {
          method: 'POST',
          headers: { host: 'payments', 'baton-context': handle },
        });
        const body = (await out.body.json()) as { code?: string; reason?: string };
        assert.equal(out.statusCode, 400, target);
        assert.deepEqual([body.code, body.reason], [BadRequestError.code, 'ambiguous-path']);
      }
      assert.equal(mesh.apps.payments.hits, before);
    });
  });
});
