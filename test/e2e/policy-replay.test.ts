/**
 * Policy replay (issue #16): a real `baton sidecar` and a real `baton sts`
 * behind a policy server that plays an attacker replaying validly signed
 * documents. Both refuse a document older than policy.maxAgeSeconds, and
 * with policy.stateFile they refuse, after a restart, any version older
 * than the last one they had seen.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { loadPolicyPath } from '../../src/policy/language/load.ts';
import { policyToJSON } from '../../src/policy/language/parse.ts';
import { generatePolicySigningKey, importPolicySigningKey, signPolicy } from '../../src/policy/distribution/signing.ts';
import { freePort } from '../helpers/net.ts';
import { type RunningProcess, startBaton } from '../helpers/process.ts';
import { baseConfig } from '../helpers/sts.ts';

const FIXTURE_PATH = new URL('../fixtures/policy-server/callgraph.yaml', import.meta.url).pathname;
const loaded = loadPolicyPath(FIXTURE_PATH);
const keys = generatePolicySigningKey('ES256');
const signingKey = importPolicySigningKey(keys.privateKeyPem);
const MAX_AGE = 600;

async function document(version: number, ageSeconds: number): Promise<string> {
  return await signPolicy(
    {
      version,
      digest: loaded.compiled.digest,
      issuedAt: Math.floor(Date.now() / 1000) - ageSeconds,
      policy: policyToJSON(loaded.policy),
    },
    signingKey,
  );
}

describe('policy replay: maximum age and the last version kept across restarts', { timeout: 120_000 }, () => {
  let dir: string;
  let server: Server;
  let url: string;
  let current = '';
  const running: RunningProcess[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-policy-replay-'));
    writeFileSync(join(dir, 'policy.pub.pem'), keys.publicKeyPem);
    // Serves `current`, validly signed; 304 while the client already has it.
    server = createServer((req, res) => {
      req.resume();
      const etag = `"${current.slice(-16)}"`;
      if (req.headers['if-none-match'] === etag) setTimeout(() => res.writeHead(304, { etag }).end(), 50);
      else res.writeHead(200, { 'content-type': 'application/jose', etag }).end(current);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  after(async () => {
    await Promise.all(running.map((p) => p.stop('SIGTERM', 5_000)));
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  const policy = (name: string) => ({
    url,
    publicKey: join(dir, 'policy.pub.pem'),
    maxAgeSeconds: MAX_AGE,
    stateFile: join(dir, `${name}.state.json`),
  });

  function sidecar(): RunningProcess {
    const file = join(dir, 'sidecar.yaml');
    // The STS is unreachable on purpose: only the policy client is under test.
    writeFileSync(
      file,
      stringify({
        service: 'orders',
        transport: { mode: 'plaintext' },
        inbound: { port: 0 },
        outbound: { port: 0 },
        admin: { port: 0 },
        sts: { issuer: 'http://127.0.0.1:9', clientId: 'orders', clientSecret: 'orders-secret-0123456789' },
        policy: policy('sidecar'),
      }),
    );
    const started = startBaton(['sidecar', '--config', file]);
    running.push(started);
    return started;
  }
  async function sts(): Promise<RunningProcess> {
    const port = await freePort();
    const file = join(dir, 'sts.yaml');
    writeFileSync(
      file,
      JSON.stringify(
        baseConfig({
          issuer: `http://127.0.0.1:${port}`,
          extra: {
            port,
            logLevel: 'info',
            keys: { dir: join(dir, 'sts-keys') },
            policy: { ...policy('sts'), readyTimeoutMs: 0 },
          },
        }),
      ),
    );
    const started = startBaton(['sts', '--config', file]);
    running.push(started);
    return started;
  }
  async function stop(p: RunningProcess): Promise<void> {
    await p.stop('SIGTERM', 5_000);
    running.splice(running.indexOf(p), 1);
  }

  for (const part of ['sidecar', 'sts'] as const) {
    it(`${part}: refuses a document issued longer ago than maxAgeSeconds, then takes a fresh one`, async () => {
      current = await document(5, MAX_AGE + 3_600);
      const p = part === 'sidecar' ? sidecar() : await sts();
      await p.waitForOutput(/"code":"BATON_POLICY_STALE","reason":"age"/, 20_000);
      assert.doesNotMatch(p.stdout(), /"msg":"policy updated"/);
      current = await document(5, 10);
      await p.waitForOutput(/"policyVersion":5,[^\n]*"msg":"policy updated"/, 20_000);
      await stop(p);
    });

    it(`${part}: after a restart, refuses a freshly signed older version than the last one it saw (state file)`, async () => {
      current = await document(7, 0);
      const first = part === 'sidecar' ? sidecar() : await sts();
      await first.waitForOutput(/"policyVersion":7,[^\n]*"msg":"policy updated"/, 20_000);
      await stop(first);
      assert.equal(
        (JSON.parse(readFileSync(join(dir, `${part}.state.json`), 'utf8')) as { version: number }).version,
        7,
      );
      // A replay of version 6 (signed within the maximum age) while the process was down.
      current = await document(6, 5);
      const second = part === 'sidecar' ? sidecar() : await sts();
      await second.waitForOutput(/"code":"BATON_POLICY_STALE","reason":"version"/, 20_000);
      assert.doesNotMatch(second.stdout(), /"msg":"policy updated"/);
      // The current version, re-signed later, is taken again.
      current = await document(7, 0);
      await second.waitForOutput(/"policyVersion":7,[^\n]*"msg":"policy updated"/, 20_000);
      await stop(second);
    });
  }
});
