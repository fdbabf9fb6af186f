/**
 * The policy client against a real `baton policy-server` that goes away and
 * comes back with a new policy: it keeps the last good one while the server is
 * down and follows it once it is back (the rest of the client, against a
 * stand-in server: test/policy/client.test.ts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createPolicyClient } from '../../src/policy/distribution/client.ts';
import { generatePolicySigningKey } from '../../src/policy/distribution/signing.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { freePort, waitFor } from '../helpers/net.ts';
import { startBaton } from '../helpers/process.ts';
import { PolicyServerUnavailableError } from '../../src/policy/distribution/errors.ts';

const FIXTURE = readFileSync(new URL('../fixtures/policy-server/callgraph.yaml', import.meta.url), 'utf8');
const keys = generatePolicySigningKey('ES256');
const logger = createLogger({ name: 'test', level: 'silent' });

describe('policy client and a real policy server', () => {
  it('keeps the last good policy while the policy server is down, and follows it when it is back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-policy-client-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const policyFile = join(dir, 'callgraph.yaml');
    const keyFile = join(dir, 'key.pem');
    writeFileSync(policyFile, FIXTURE);
    writeFileSync(keyFile, keys.privateKeyPem, { mode: 0o600 });
    const port = await freePort();
    const args = [
      'policy-server',
      '--policy',
      policyFile,
      '--signing-key',
      keyFile,
      '--port',
      String(port),
      '--state',
      join(dir, 'state.json'),
      '--transport',
      'plaintext',
    ];
    const first = startBaton(args);
    after(() => first.stop('SIGKILL'));
    await first.waitForOutput(/"msg":"policy server listening"/);
    const policy = createPolicyClient({
      url: `http://127.0.0.1:${port}`,
      publicKey: keys.publicKeyPem,
      logger,
      minBackoffMs: 10,
      maxBackoffMs: 50,
      waitSeconds: 5,
    });
    after(() => policy.close());
    void policy.start();
    assert.equal(await policy.waitUntilReady(5000), true);
    const version = policy.version() as number;
    await first.stop('SIGKILL');
    await waitFor(async () => policy.lastError()?.code === PolicyServerUnavailableError.code, {
      what: 'the outage to be noticed',
    });
    assert.equal(policy.ready(), true);
    assert.equal(policy.version(), version);
    writeFileSync(policyFile, FIXTURE.replace('maxDepth: 4', 'maxDepth: 3'));
    const second = startBaton(args);
    after(() => second.stop());
    await waitFor(async () => policy.current()?.maxDepth === 3, {
      timeoutMs: 10_000,
      what: 'the new policy after the restart',
    });
    assert.ok((policy.version() as number) > version);
  });
});
