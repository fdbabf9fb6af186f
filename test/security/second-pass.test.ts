/**
 * The second attack pass (issue #16) against the running mesh of
 * mesh-fixture.ts: path normalisation tricks, headers the app must not
 * trust, and token lifetime edges at the STS. Each case is a class, not
 * one example; every refused case also shows the app saw nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { type SecurityMesh, startSecurityMesh } from './mesh-fixture.ts';

const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

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
      const r = await mesh.exchange('orders', { grant_type: TOKEN_EXCHANGE, subject_token: subject, subject_token_type: ACCESS_TOKEN, audience: 'payments' });
      assert.equal(r.status, 400, `exp ${exp - nowSec()} s`);
      assert.equal(r.body.error, 'invalid_request');
      assert.equal(r.body.code, 'BATON_STS_SUBJECT_TOKEN_EXPIRED');
      assert.equal(r.body.access_token, undefined);
    }
    // One second left: minted, and expires_in is never above what is left nor below 1.
    const live = mesh.meshToken('orders', ['gateway'], { exp: nowSec() + 2 });
    const ok = await mesh.exchange('orders', { grant_type: TOKEN_EXCHANGE, subject_token: live, subject_token_type: ACCESS_TOKEN, audience: 'payments' });
    assert.equal(ok.status, 200);
    assert.ok(typeof ok.body.expires_in === 'number' && ok.body.expires_in >= 1 && ok.body.expires_in <= 2, `expires_in ${String(ok.body.expires_in)}`);
  });

  it('strips method-override headers and sets Forwarded, X-Forwarded-Host/-Proto and X-Real-IP itself, whatever the caller sent', async () => {
    const r = await request(mesh.inbound('orders', '/orders'), {
      method: 'GET',
      headers: [
        'authorization', `Bearer ${mesh.meshToken('orders', ['gateway'])}`,
        'X-HTTP-Method-Override', 'DELETE', 'x-http-method', 'PUT', 'X-Method-Override', 'PATCH', 'x-http-method-override', 'DELETE',
        'Forwarded', 'for=10.0.0.1;host=admin.internal;proto=https', 'forwarded', 'for=10.0.0.2',
        'X-Forwarded-Host', 'admin.internal', 'X-Forwarded-Proto', 'https', 'X-Real-IP', '10.0.0.1', 'x-real-ip', '10.0.0.3',
      ],
    });
    await r.body.dump();
    assert.equal(r.statusCode, 200);
    const seen = mesh.apps.orders.seen.at(-1);
    assert.ok(seen);
    assert.equal(seen.method, 'GET');
    const names = seen.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    for (const name of ['x-http-method-override', 'x-http-method', 'x-method-override']) assert.equal(names.includes(name), false, name);
    for (const name of ['forwarded', 'x-forwarded-host', 'x-forwarded-proto', 'x-real-ip']) assert.equal(names.filter((n) => n === name).length, 1, name);
    const host = `127.0.0.1:${mesh.ports.orders.inbound}`;
    assert.equal(seen.headers['x-real-ip'], '127.0.0.1');
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.equal(seen.headers['x-forwarded-host'], host);
    assert.equal(seen.headers.forwarded, `for=127.0.0.1;proto=http;host="${host}"`);
    assert.ok(!JSON.stringify(seen.headers).includes('admin.internal'));
  });
});
