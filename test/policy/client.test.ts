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
import { freePort, listenOnLoopback, waitFor } from '../helpers/net.ts';
import { startBaton } from '../helpers/process.ts';
import { PolicyDocumentMalformedError, PolicyServerUnavailableError, PolicySignatureError, PolicyStaleError } from '../../src/policy/distribution/errors.ts';

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
  return await signPolicy({ version, digest: loaded.compiled.digest, issuedAt: Math.floor(Date.now() / 1000), policy: policyToJSON(loaded.policy) }, key);
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
  after(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  const address = server.address() as { port: number };
  return { url: `http://127.0.0.1:${address.port}`, serve: (status, body) => (current = { status, body }), requests: () => served };
}

function client(url: string): PolicyClient {
  const created = createPolicyClient({ url, publicKey: keys.publicKeyPem, logger, minBackoffMs: 10, maxBackoffMs: 50, waitSeconds: 5 });
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
    await waitFor(async () => policy.lastError()?.code === PolicyStaleError.code && policy.lastError()?.reason === 'version', { what: 'the refusal' });
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
    await waitFor(async () => policy.lastError()?.code === PolicyDocumentMalformedError.code, { what: 'the garbage refusal' });
    server.serve(500, 'oops');
    await waitFor(async () => policy.lastError()?.code === PolicyServerUnavailableError.code, { what: 'the 5xx' });
    assert.equal(policy.ready(), true);
    assert.equal(policy.version(), 1);
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

  it('keeps the last good policy while the policy server is down, and follows it when it is back', async () => {
    const dir = tempDir();
    const policyFile = join(dir, 'callgraph.yaml');
    const keyFile = join(dir, 'key.pem');
    writeFileSync(policyFile, FIXTURE);
    writeFileSync(keyFile, keys.privateKeyPem, { mode: 0o600 });
    const port = await freePort();
    const args = ['policy-server', '--policy', policyFile, '--signing-key', keyFile, '--port', String(port), '--state', join(dir, 'state.json'), '--transport', 'plaintext'];
    const first = startBaton(args);
    after(() => first.stop('SIGKILL'));
    await first.waitForOutput(/"msg":"policy server listening"/);
    const policy = client(`http://127.0.0.1:${port}`);
    assert.equal(await policy.waitUntilReady(5000), true);
    const version = policy.version() as number;
    await first.stop('SIGKILL');
    await waitFor(async () => policy.lastError()?.code === PolicyServerUnavailableError.code, { what: 'the outage to be noticed' });
    assert.equal(policy.ready(), true);
    assert.equal(policy.version(), version);
    writeFileSync(policyFile, FIXTURE.replace('maxDepth: 4', 'maxDepth: 3'));
    const second = startBaton(args);
    after(() => second.stop());
    await waitFor(async () => policy.current()?.maxDepth === 3, { timeoutMs: 10_000, what: 'the new policy after the restart' });
    assert.ok((policy.version() as number) > version);
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
