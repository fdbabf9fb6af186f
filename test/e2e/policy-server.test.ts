import assert from 'node:assert/strict';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { request } from 'undici';
import { importPolicyVerificationKey, verifyPolicy } from '../../src/policy/distribution/signing.ts';
import { freePort, waitFor } from '../helpers/net.ts';
import { runBaton, startBaton } from '../helpers/process.ts';

const FIXTURE = readFileSync(new URL('../fixtures/policy-server/callgraph.yaml', import.meta.url), 'utf8');
const EDITED = FIXTURE.replace('maxDepth: 4', 'maxDepth: 5');
const dirs: string[] = [];
after(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'baton-cli-policy-server-'));
  dirs.push(dir);
  return dir;
}

/** Keys from `baton policy-server keygen`, as an operator would make them. */
async function keygen(dir: string): Promise<{ key: string; publicKey: string }> {
  const result = await runBaton(['policy-server', 'keygen', '--out', join(dir, 'keys')]);
  assert.equal(result.code, 0, result.stderr);
  return { key: join(dir, 'keys', 'policy-signing.key.pem'), publicKey: join(dir, 'keys', 'policy-signing.pub.pem') };
}

async function startServer(policyPath: string, dir: string) {
  const { key, publicKey } = await keygen(dir);
  const port = await freePort();
  const running = startBaton([
    'policy-server',
    '--policy',
    policyPath,
    '--signing-key',
    key,
    '--port',
    String(port),
    '--transport',
    'plaintext',
  ]);
  after(() => running.stop());
  await running.waitForOutput(/"msg":"policy server listening"/);
  const url = `http://127.0.0.1:${port}/v1/callgraph`;
  const verificationKey = importPolicyVerificationKey(publicKey);
  const fetchPolicy = async (headers: Record<string, string> = {}, query = '') => {
    const response = await request(url + query, { headers });
    const body = await response.body.text();
    return {
      status: response.statusCode,
      etag: String(response.headers.etag),
      body,
      payload: response.statusCode === 200 ? (await verifyPolicy(body, verificationKey)).payload : undefined,
    };
  };
  return { running, port, fetchPolicy };
}

function maxDepthOf(payload: { policy: unknown } | undefined): number | undefined {
  return (payload?.policy as { spec?: { maxDepth?: number } } | undefined)?.spec?.maxDepth;
}

describe('baton policy-server', () => {
  it('serves a policy signed with the key from keygen, and 304 for the current ETag', async () => {
    const dir = tempDir();
    const policyPath = join(dir, 'callgraph.yaml');
    writeFileSync(policyPath, FIXTURE);
    const { fetchPolicy, port } = await startServer(policyPath, dir);
    assert.equal(statSync(join(dir, 'keys', 'policy-signing.key.pem')).mode & 0o777, 0o600);
    const first = await fetchPolicy();
    assert.equal(first.status, 200);
    assert.equal(maxDepthOf(first.payload), 4);
    assert.equal((await fetchPolicy({ 'if-none-match': first.etag })).status, 304);
    assert.equal((await request(`http://127.0.0.1:${port}/readyz`)).statusCode, 200);
  });

  it('releases a long-poll when the file is edited', async () => {
    const dir = tempDir();
    const policyPath = join(dir, 'callgraph.yaml');
    writeFileSync(policyPath, FIXTURE);
    const { fetchPolicy } = await startServer(policyPath, dir);
    const first = await fetchPolicy();
    const pending = fetchPolicy({ 'if-none-match': first.etag }, '?wait=30');
    // A deliberate wait: the server does not say when a long-poll is parked, and an edit before it
    // would answer the poll at once, testing nothing about its release.
    await new Promise((r) => setTimeout(r, 200));
    const edited = Date.now();
    writeFileSync(policyPath, EDITED);
    const next = await pending;
    assert.equal(next.status, 200);
    assert.ok(Date.now() - edited < 3000);
    assert.equal(maxDepthOf(next.payload), 5);
    assert.ok((next.payload?.version ?? 0) > (first.payload?.version ?? 0));
  });

  it('keeps serving the last good version through a bad edit, and logs the problem with its location', async () => {
    const dir = tempDir();
    const policyPath = join(dir, 'callgraph.yaml');
    writeFileSync(policyPath, FIXTURE);
    const { fetchPolicy, running } = await startServer(policyPath, dir);
    const first = await fetchPolicy();
    writeFileSync(policyPath, FIXTURE.replace('from: gateway', 'from: nowhere'));
    const line = await running.waitForOutput(/.*policy change refused.*/);
    assert.match(line, /callgraph\.yaml:\d+:\d+: error /);
    const still = await fetchPolicy();
    assert.equal(still.etag, first.etag);
    assert.equal(still.payload?.version, first.payload?.version);
  });

  it('picks up a ConfigMap-style atomic ..data symlink swap', async () => {
    const dir = tempDir();
    const mount = join(dir, 'policy');
    mkdirSync(join(mount, '..2024_01_01'), { recursive: true });
    writeFileSync(join(mount, '..2024_01_01', 'callgraph.yaml'), FIXTURE);
    symlinkSync('..2024_01_01', join(mount, '..data'));
    symlinkSync('..data/callgraph.yaml', join(mount, 'callgraph.yaml'));
    const { fetchPolicy } = await startServer(mount, dir);
    assert.equal(maxDepthOf((await fetchPolicy()).payload), 4);
    mkdirSync(join(mount, '..2024_01_02'));
    writeFileSync(join(mount, '..2024_01_02', 'callgraph.yaml'), EDITED);
    symlinkSync('..2024_01_02', join(mount, '..data_tmp'));
    renameSync(join(mount, '..data_tmp'), join(mount, '..data'));
    rmSync(join(mount, '..2024_01_01'), { recursive: true });
    await waitFor(async () => maxDepthOf((await fetchPolicy()).payload) === 5, {
      timeoutMs: 5000,
      what: 'the swapped policy',
    });
  });

  it('refuses a signing key that is not ES256 or EdDSA, naming the file', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'callgraph.yaml'), FIXTURE);
    writeFileSync(join(dir, 'bad.pem'), 'not a key');
    const result = await runBaton([
      'policy-server',
      '--policy',
      join(dir, 'callgraph.yaml'),
      '--signing-key',
      join(dir, 'bad.pem'),
      '--port',
      '0',
    ]);
    assert.equal(result.code, 78);
    assert.match(result.stderr, /bad\.pem/);
  });

  it('creates a missing --state folder, becomes ready, and persists the version there', async () => {
    const dir = tempDir();
    const policyPath = join(dir, 'callgraph.yaml');
    writeFileSync(policyPath, FIXTURE);
    const { key } = await keygen(dir);
    const state = join(dir, 'var/lib/baton/policy-version.json');
    const port = await freePort();
    const running = startBaton([
      'policy-server',
      '--policy',
      policyPath,
      '--signing-key',
      key,
      '--port',
      String(port),
      '--state',
      state,
      '--transport',
      'plaintext',
    ]);
    after(() => running.stop());
    await waitFor(
      async () =>
        (await request(`http://127.0.0.1:${port}/readyz`).then(
          (r) => r.statusCode,
          () => 0,
        )) === 200,
      { what: 'ready' },
    );
    assert.ok((JSON.parse(readFileSync(state, 'utf8')) as { version: number }).version > 0);
  });

  it('exits 78 naming the state file when its folder cannot be created, instead of sitting unready', async () => {
    const dir = tempDir();
    const policyPath = join(dir, 'callgraph.yaml');
    writeFileSync(policyPath, FIXTURE);
    const { key } = await keygen(dir);
    writeFileSync(join(dir, 'a-file'), '');
    const state = join(dir, 'a-file/policy-version.json');
    const result = await runBaton([
      'policy-server',
      '--policy',
      policyPath,
      '--signing-key',
      key,
      '--port',
      String(await freePort()),
      '--state',
      state,
      '--transport',
      'plaintext',
    ]);
    assert.equal(result.code, 78, result.stderr);
    assert.ok(result.stderr.includes(`${state}: state:`), result.stderr);
    assert.doesNotMatch(result.stderr, /\n\s+at /, 'one line, no stack trace');
  });

  it('exits 2 on an unknown flag', async () => {
    assert.equal((await runBaton(['policy-server', '--nope'])).code, 2);
  });
});
