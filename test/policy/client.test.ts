import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createPolicyClient, type PolicyClient } from '../../src/policy/distribution/client.ts';
import { loadPolicyPath } from '../../src/policy/language/load.ts';
import { policyToJSON } from '../../src/policy/language/parse.ts';
import { generatePolicySigningKey, importPolicySigningKey, signPolicy } from '../../src/policy/distribution/signing.ts';
import { createFilePolicySource } from '../../src/policy/distribution/source.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { captureLogs } from '../helpers/logs.ts';
import { listenOnLoopback, waitFor } from '../helpers/net.ts';
import {
  PolicyDocumentMalformedError,
  PolicyServerUnavailableError,
  PolicySignatureError,
  PolicyStaleError,
} from '../../src/policy/distribution/errors.ts';

const FIXTURE_PATH = new URL('../fixtures/policy-server/callgraph.yaml', import.meta.url).pathname;
const FIXTURE = readFileSync(FIXTURE_PATH, 'utf8');
const loaded = loadPolicyPath(FIXTURE_PATH);
const keys = generatePolicySigningKey('ES256');
const signingKey = importPolicySigningKey(keys.privateKeyPem);
const logger = createLogger({ name: 'test', level: 'silent' });
const dirs: string[] = [];
after(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'baton-policy-client-'));
  dirs.push(dir);
  return dir;
}

async function signed(version: number, key = signingKey): Promise<string> {
  return await signPolicy(
    {
      version,
      digest: loaded.compiled.digest,
      issuedAt: Math.floor(Date.now() / 1000),
      policy: policyToJSON(loaded.policy),
    },
    key,
  );
}

/** A stand-in policy server that serves whatever the test sets, to play the misbehaving server. */
async function fakeServer(): Promise<{ url: string; serve(status: number, body: string): void; requests(): number }> {
  let current = { status: 503, body: '' };
  let served = 0;
  const server: Server = createServer((req, res) => {
    served += 1;
    const etag = `"${current.status}-${current.body.length}-${current.body.slice(-8)}"`;
    if (req.headers['if-none-match'] === etag) {
      setTimeout(() => res.writeHead(304, { etag }).end(), 50);
      return;
    }
    res.writeHead(current.status, { 'content-type': 'application/jose', etag }).end(current.body);
  });
  await listenOnLoopback(server);
  after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const address = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}`,
    serve: (status, body) => (current = { status, body }),
    requests: () => served,
  };
}

function client(url: string): PolicyClient {
  const created = createPolicyClient({
    url,
    publicKey: keys.publicKeyPem,
    logger,
    minBackoffMs: 10,
    maxBackoffMs: 50,
    waitSeconds: 5,
  });
  after(() => created.close());
  void created.start();
  return created;
}

describe('policy client', () => {
  it('becomes ready only after the first good policy', async () => {
    const server = await fakeServer();
    const policy = client(server.url);
    await waitFor(async () => server.requests() >= 2, { what: 'a few attempts' });
    assert.equal(policy.ready(), false);
    assert.equal(policy.current(), undefined);
    assert.equal(await policy.waitUntilReady(50), false);
    server.serve(200, await signed(3));
    assert.equal(await policy.waitUntilReady(3000), true);
    assert.equal(policy.version(), 3);
    assert.equal(policy.current()?.digest, loaded.compiled.digest);
  });

  it('refuses a policy signed with another key', async () => {
    const server = await fakeServer();
    server.serve(200, await signed(1, importPolicySigningKey(generatePolicySigningKey().privateKeyPem)));
    const policy = client(server.url);
    await waitFor(async () => policy.lastError()?.code === PolicySignatureError.code, { what: 'the refusal' });
    assert.equal(policy.ready(), false);
  });

  it('refuses an older version and keeps the newer one', async () => {
    const server = await fakeServer();
    server.serve(200, await signed(10));
    const policy = client(server.url);
    assert.equal(await policy.waitUntilReady(3000), true);
    server.serve(200, await signed(5));
    await waitFor(
      async () => policy.lastError()?.code === PolicyStaleError.code && policy.lastError()?.reason === 'version',
      { what: 'the refusal' },
    );
    assert.equal(policy.version(), 10);
    server.serve(200, await signed(11));
    await waitFor(async () => policy.version() === 11, { what: 'the newer version' });
  });

  it('refuses garbage and server errors and keeps the last good policy', async () => {
    const server = await fakeServer();
    server.serve(200, await signed(1));
    const policy = client(server.url);
    assert.equal(await policy.waitUntilReady(3000), true);
    server.serve(200, '<html>upstream error</html>');
    await waitFor(async () => policy.lastError()?.code === PolicyDocumentMalformedError.code, {
      what: 'the garbage refusal',
    });
    server.serve(500, 'oops');
    await waitFor(async () => policy.lastError()?.code === PolicyServerUnavailableError.code, { what: 'the 5xx' });
    assert.equal(policy.ready(), true);
    assert.equal(policy.version(), 1);
  });

  it('retries a failing server after a backoff that doubles per failure up to maxBackoffMs, on mock.timers', async (t) => {
    // The top of the jitter window (Math.random() = 1), and timers moved by hand: each retry is due at a known tick.
    t.mock.method(Math, 'random', () => 1);
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const server = await fakeServer();
    server.serve(503, '');
    const policy = createPolicyClient({
      url: server.url,
      publicKey: keys.publicKeyPem,
      logger,
      minBackoffMs: 1_000,
      maxBackoffMs: 4_000,
      waitSeconds: 5,
    });
    t.after(() => policy.close());
    /**
     * Turns of the event loop (not timers) until the server has answered `n` requests and the client
     * has taken that failure: a new lastError, reported just before the client schedules its retry.
     */
    let taken: unknown;
    const answered = async (n: number): Promise<void> => {
      for (let turn = 0; turn < 10_000 && !(server.requests() === n && policy.lastError() !== taken); turn++)
        await new Promise((resolve) => setImmediate(resolve));
      assert.equal(server.requests(), n);
      assert.notEqual(policy.lastError(), taken, `failure ${n} taken`);
      taken = policy.lastError();
    };
    void policy.start();
    await answered(1);
    for (const [n, delay] of [
      [2, 1_000],
      [3, 2_000],
      [4, 4_000],
      [5, 4_000],
    ] as const) {
      t.mock.timers.tick(delay - 1);
      for (let turn = 0; turn < 20; turn++) await new Promise((resolve) => setImmediate(resolve));
      assert.equal(server.requests(), n - 1, `no retry ${delay - 1} ms after failure ${n - 1}`);
      t.mock.timers.tick(1);
      await answered(n);
    }
    assert.equal(policy.lastError()?.code, PolicyServerUnavailableError.code);
  });

  it('notifies listeners once per accepted version', async () => {
    const server = await fakeServer();
    server.serve(200, await signed(1));
    const policy = client(server.url);
    const seen: number[] = [];
    policy.onUpdate((_compiled, version) => seen.push(version));
    await policy.waitUntilReady(3000);
    server.serve(200, await signed(2));
    await waitFor(async () => seen.includes(2), { what: 'version 2' });
    assert.deepEqual(seen, [1, 2]);
  });

  it('logs one line per accepted version, with its version and age, and none for a re-signed copy', async () => {
    const server = await fakeServer();
    server.serve(200, await signed(1));
    const logs = captureLogs('policy-client');
    const policy = createPolicyClient({
      url: server.url,
      publicKey: keys.publicKeyPem,
      logger: logs.logger,
      minBackoffMs: 10,
      maxBackoffMs: 50,
      waitSeconds: 5,
    });
    after(() => policy.close());
    void policy.start();
    await policy.waitUntilReady(3000);
    server.serve(200, await signed(2));
    await waitFor(async () => policy.version() === 2, { what: 'version 2' });
    const updates = logs.lines.filter((l) => l.msg === 'policy updated');
    assert.deepEqual(
      updates.map((l) => [l.event, l.policyVersion, l.digest, typeof l.ageSeconds]),
      [
        ['policy_updated', 1, loaded.compiled.digest, 'number'],
        ['policy_updated', 2, loaded.compiled.digest, 'number'],
      ],
    );
  });
});

describe('file policy source', () => {
  it('loads the file and hot-reloads an edit', async () => {
    const path = join(tempDir(), 'callgraph.yaml');
    writeFileSync(path, FIXTURE);
    const source = createFilePolicySource(path, { logger, debounceMs: 20, pollIntervalMs: 100 });
    after(() => source.close());
    await source.start();
    assert.equal(source.ready(), true);
    assert.equal(source.version(), 1);
    writeFileSync(path, FIXTURE.replace('maxDepth: 4', 'maxDepth: 6'));
    await waitFor(async () => source.current()?.maxDepth === 6, { what: 'the edit' });
    assert.equal(source.version(), 2);
  });

  it('logs one line per accepted version, naming the file', async () => {
    const path = join(tempDir(), 'callgraph.yaml');
    writeFileSync(path, FIXTURE);
    const logs = captureLogs('file-source');
    const source = createFilePolicySource(path, { logger: logs.logger, debounceMs: 20, pollIntervalMs: 100 });
    after(() => source.close());
    await source.start();
    writeFileSync(path, FIXTURE.replace('maxDepth: 4', 'maxDepth: 6'));
    await waitFor(async () => source.version() === 2, { what: 'the edit' });
    const lines = logs.lines.filter((l) => l.level === 'info');
    assert.deepEqual(
      lines.map((l) => [l.msg, l.event, l.policyVersion, l.path]),
      [
        ['policy updated', 'policy_updated', 1, path],
        ['policy updated', 'policy_updated', 2, path],
      ],
    );
  });

  it('is not ready while the file is invalid', async () => {
    const path = join(tempDir(), 'callgraph.yaml');
    writeFileSync(path, FIXTURE.replace('from: gateway', 'from: nowhere'));
    const source = createFilePolicySource(path, { logger, debounceMs: 20, pollIntervalMs: 100 });
    after(() => source.close());
    void source.start();
    assert.equal(await source.waitUntilReady(200), false);
    writeFileSync(path, FIXTURE);
    assert.equal(await source.waitUntilReady(3000), true);
  });
});
