import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { request } from 'undici';
import { createVersionCounter } from '../../src/policy/distribution/publisher.ts';
import { createPolicyServer, ifNoneMatchHolds, type PolicyServer } from '../../src/policy/distribution/server.ts';
import {
  generatePolicySigningKey,
  importPolicySigningKey,
  importPolicyVerificationKey,
  verifyPolicy,
} from '../../src/policy/distribution/signing.ts';
import { createPolicyWatcher } from '../../src/policy/distribution/watch.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { freePort, waitFor } from '../helpers/net.ts';
import { BadRequestError, NotFoundError, NotReadyError, problemType } from '../../src/core/errors.ts';

const FIXTURE = readFileSync(new URL('../fixtures/policy-server/callgraph.yaml', import.meta.url), 'utf8');
const EDITED = FIXTURE.replace('maxDepth: 4', 'maxDepth: 5');
const logger = createLogger({ name: 'test', level: 'silent' });
const keys = generatePolicySigningKey('EdDSA');
const verificationKey = importPolicyVerificationKey(keys.publicKeyPem);
const dirs: string[] = [];
after(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

async function startServer(
  text: string | undefined,
  options: { maxWaitSeconds?: number; reissueSeconds?: number } = {},
): Promise<{ server: PolicyServer; url: string; path: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-policy-server-'));
  dirs.push(dir);
  const path = join(dir, 'callgraph.yaml');
  if (text !== undefined) writeFileSync(path, text);
  const watcher = createPolicyWatcher(path, { logger, debounceMs: 20, pollIntervalMs: 100 });
  const server = createPolicyServer({
    watcher,
    signingKey: importPolicySigningKey(keys.privateKeyPem),
    versions: createVersionCounter({ now: Date.now }),
    logger,
    ...options,
  });
  const url = await server.listen({ host: '127.0.0.1', port: await freePort() });
  after(async () => {
    watcher.close();
    await server.close();
  });
  if (text !== undefined) await waitFor(async () => server.published() !== undefined, { what: 'first publication' });
  return { server, url, path };
}

async function get(url: string, headers: Record<string, string> = {}, signal?: AbortSignal) {
  const response = await request(url, { headers, ...(signal === undefined ? {} : { signal }) });
  return { status: response.statusCode, headers: response.headers, body: await response.body.text() };
}

describe('policy server', () => {
  it('serves the policy as a signed JWS with a strong ETag', async () => {
    const { url } = await startServer(FIXTURE);
    const response = await get(`${url}/v1/callgraph`);
    assert.equal(response.status, 200);
    assert.equal(response.headers['content-type'], 'application/jose');
    assert.match(String(response.headers.etag), /^"v\d+-[A-Za-z0-9_-]+"$/);
    const { payload } = await verifyPolicy(response.body, verificationKey);
    assert.equal((payload.policy as { metadata: { name: string } }).metadata.name, 'shop');
    assert.ok(String(response.headers.etag).includes(payload.digest));
  });

  it('re-signs the current version with a fresh issuedAt every reissueSeconds, so clients with a maximum age keep taking it', async () => {
    const { url } = await startServer(FIXTURE, { reissueSeconds: 1 });
    const first = await get(`${url}/v1/callgraph`);
    const before = (await verifyPolicy(first.body, verificationKey)).payload;
    // A long-poll is released by the re-issue, with the same version and digest and a later issuedAt.
    const released = await get(`${url}/v1/callgraph?wait=5`, { 'if-none-match': String(first.headers.etag) });
    assert.equal(released.status, 200);
    assert.notEqual(released.headers.etag, first.headers.etag);
    const after = (await verifyPolicy(released.body, verificationKey)).payload;
    assert.equal(after.version, before.version);
    assert.equal(after.digest, before.digest);
    assert.ok(after.issuedAt > before.issuedAt, `${after.issuedAt} > ${before.issuedAt}`);
  });

  it('answers 304 when If-None-Match holds the current ETag', async () => {
    const { url } = await startServer(FIXTURE);
    const { etag } = (await get(`${url}/v1/callgraph`)).headers;
    assert.equal((await get(`${url}/v1/callgraph`, { 'if-none-match': String(etag) })).status, 304);
    assert.equal((await get(`${url}/v1/callgraph`, { 'if-none-match': `W/${etag}` })).status, 304);
    assert.equal((await get(`${url}/v1/callgraph`, { 'if-none-match': '"v1-other"' })).status, 200);
  });

  it('refuses a wait that is not a whole number of seconds with a problem document', async () => {
    const { url } = await startServer(FIXTURE);
    for (const wait of ['abc', '-1', '1.5', '']) {
      const response = await get(`${url}/v1/callgraph?wait=${wait}`);
      assert.equal(response.status, 400);
      assert.equal(response.headers['content-type'], 'application/problem+json; charset=utf-8');
      assert.deepEqual(
        [JSON.parse(response.body).code, JSON.parse(response.body).reason],
        [BadRequestError.code, 'wait'],
      );
    }
  });

  it('answers an unknown path and a body fastify cannot parse as problem documents pointing at docs/errors.md', async () => {
    const { server } = await startServer(FIXTURE);
    const missing = await server.app.inject({ method: 'GET', url: '/v2/callgraph' });
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().code, NotFoundError.code);
    assert.equal(missing.json().type, problemType(NotFoundError.code));
    const posted = await server.app.inject({
      method: 'POST',
      url: '/v1/callgraph',
      headers: { 'content-type': 'application/json' },
      payload: '{',
    });
    assert.equal(posted.statusCode, 400);
    assert.equal(posted.json().code, BadRequestError.code);
  });

  it('holds a long-poll until a new version is published', async () => {
    const { url, path, server } = await startServer(FIXTURE);
    const first = await get(`${url}/v1/callgraph`);
    const pending = get(`${url}/v1/callgraph?wait=30`, { 'if-none-match': String(first.headers.etag) });
    await waitFor(async () => server.waiting() === 1, { what: 'the request to be held' });
    writeFileSync(path, EDITED);
    const released = await pending;
    assert.equal(released.status, 200);
    const before = (await verifyPolicy(first.body, verificationKey)).payload;
    const now = (await verifyPolicy(released.body, verificationKey)).payload;
    assert.ok(now.version > before.version);
    assert.notEqual(now.digest, before.digest);
  });

  it('ends a long-poll with 304 when the wait runs out, clamping long waits to the maximum', async () => {
    const { url } = await startServer(FIXTURE, { maxWaitSeconds: 1 });
    const { etag } = (await get(`${url}/v1/callgraph`)).headers;
    const started = Date.now();
    const response = await get(`${url}/v1/callgraph?wait=999`, { 'if-none-match': String(etag) });
    assert.equal(response.status, 304);
    assert.ok(Date.now() - started >= 900 && Date.now() - started < 5000);
  });

  it('lets go of a long-poll whose client disconnects', async () => {
    const { url, server } = await startServer(FIXTURE);
    const { etag } = (await get(`${url}/v1/callgraph`)).headers;
    const abort = new AbortController();
    const pending = get(`${url}/v1/callgraph?wait=30`, { 'if-none-match': String(etag) }, abort.signal).catch(
      () => 'aborted',
    );
    await waitFor(async () => server.waiting() === 1, { what: 'the request to be held' });
    abort.abort();
    assert.equal(await pending, 'aborted');
    await waitFor(async () => server.waiting() === 0, { what: 'the waiter to be dropped' });
  });

  it('is live but not ready until a valid policy is loaded', async () => {
    const { url, path, server } = await startServer(undefined);
    assert.equal((await get(`${url}/livez`)).status, 200);
    const notReady = await get(`${url}/readyz`);
    assert.equal(notReady.status, 503);
    assert.deepEqual(
      [JSON.parse(notReady.body).code, JSON.parse(notReady.body).reason],
      [NotReadyError.code, 'policy'],
    );
    assert.equal((await get(`${url}/v1/callgraph`)).status, 503);
    writeFileSync(path, FIXTURE);
    await waitFor(async () => server.published() !== undefined, { what: 'the policy' });
    assert.equal((await get(`${url}/readyz`)).status, 200);
  });
});

describe('policy versions', () => {
  it('never go backwards across a restart with a state file, even when the clock does', () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-policy-state-'));
    dirs.push(dir);
    const stateFile = join(dir, 'state.json');
    let clock = 2_000_000_000_000;
    const first = createVersionCounter({ stateFile, now: () => clock });
    const a = first.next();
    const b = first.next();
    clock -= 3_600_000;
    const restarted = createVersionCounter({ stateFile, now: () => clock });
    const c = restarted.next();
    assert.ok(a < b && b < c);
  });

  it('start from the clock without a state file, so a restart is ahead of the last run', () => {
    let clock = 1_000_000_000;
    const counter = createVersionCounter({ now: () => clock });
    const a = counter.next();
    clock += 5_000;
    assert.ok(createVersionCounter({ now: () => clock }).next() > a);
  });
});

describe('If-None-Match', () => {
  it('uses the weak comparison and honours * and lists (RFC 9110 §13.1.2)', () => {
    assert.ok(ifNoneMatchHolds('"a", "b"', '"b"'));
    assert.ok(ifNoneMatchHolds('W/"b"', '"b"'));
    assert.ok(ifNoneMatchHolds('*', '"b"'));
    assert.ok(!ifNoneMatchHolds('"c"', '"b"'));
    assert.ok(!ifNoneMatchHolds(undefined, '"b"'));
  });
});
