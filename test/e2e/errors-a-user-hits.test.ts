import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { FIXTURE_POLICY } from '../helpers/sts.ts';
import { BATON_BIN, runBaton, startBaton } from '../helpers/process.ts';
import { KeyFileExistsError } from '../../src/cli/errors.ts';
import { problemType } from '../../src/core/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'baton-cli-errors-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('a mistyped command', () => {
  it('gets a "did you mean" and exit status 2', async () => {
    const { code, stderr } = await runBaton(['polcy', 'check']);
    assert.equal(code, 2);
    assert.match(stderr, /did you mean 'baton policy'\?/);
  });

  it('gets a "did you mean" for a policy subcommand too', async () => {
    const { code, stderr } = await runBaton(['policy', 'chek', 'x.yaml']);
    assert.equal(code, 2);
    assert.match(stderr, /did you mean 'baton policy check'\?/);
  });

  it('gets no suggestion when nothing is close', async () => {
    const { code, stderr } = await runBaton(['frobnicate']);
    assert.equal(code, 2);
    assert.doesNotMatch(stderr, /did you mean/);
  });
});

describe('help for sub-subcommands', () => {
  it('policy-server keygen --help prints its usage', async () => {
    const { code, stdout } = await runBaton(['policy-server', 'keygen', '--help']);
    assert.equal(code, 0);
    assert.match(stdout, /^Usage: baton policy-server keygen --out DIR/);
  });

  it('sts hash-secret --help prints its usage at once, without reading standard input', async () => {
    // stdin stays an open pipe: a command that reads it would wait forever.
    const child = spawn(process.execPath, [BATON_BIN, 'sts', 'hash-secret', '--help'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    clearTimeout(timer);
    child.stdin.destroy();
    assert.equal(child.signalCode, null, 'it exited by itself');
    assert.equal(code, 0);
    assert.match(stdout, /^Usage: baton sts hash-secret/);
  });

  it('sidecar --help lists its flags with their defaults and every configuration key, from the schema', async () => {
    const { code, stdout } = await runBaton(['sidecar', '--help']);
    assert.equal(code, 0);
    assert.match(stdout, /--inbound-port N\s+sets inbound\.port \(default 7070\)/);
    assert.match(stdout, /--admin-port N\s+sets admin\.port \(default 7072\)/);
    assert.match(stdout, /^ {2}sts\.issuer\s+required$/m);
    // mtls by default: the certificate is the STS credential, so a client secret is optional.
    assert.match(stdout, /^ {2}sts\.clientSecret\s+optional$/m);
    assert.match(stdout, /^ {2}shutdown\.graceMs\s+default 10000$/m);
    assert.match(stdout, /env BATON_STS__CLIENT_SECRET/);
  });
});

describe('policy-server keygen over existing files', () => {
  it('refuses with a clear line naming the file, not a raw EEXIST, and leaves the key as it was', async () => {
    const out = join(dir, 'keys');
    assert.equal((await runBaton(['policy-server', 'keygen', '--out', out])).code, 0);
    const before = readFileSync(join(out, 'policy-signing.key.pem'), 'utf8');
    const { code, stderr } = await runBaton(['policy-server', 'keygen', '--out', out]);
    assert.equal(code, 1);
    assert.match(stderr, /refusing to overwrite .*policy-signing\.key\.pem/);
    assert.doesNotMatch(stderr, /EEXIST|\n\s+at /);
    // The line after names the code and its section of docs/errors.md.
    assert.ok(stderr.includes(`${KeyFileExistsError.code}: ${problemType(KeyFileExistsError.code)}`), stderr);
    assert.equal(readFileSync(join(out, 'policy-signing.key.pem'), 'utf8'), before);
  });

  it('writes neither file when only the public one is there', async () => {
    const out = join(dir, 'half');
    mkdirSync(out);
    writeFileSync(join(out, 'policy-signing.pub.pem'), 'old');
    const { code } = await runBaton(['policy-server', 'keygen', '--out', out]);
    assert.equal(code, 1);
    assert.deepEqual(readdirSync(out), ['policy-signing.pub.pem']);
  });
});

describe('configuration a user gets wrong', () => {
  it('a sidecar config with a mistyped key names it and the key it was meant to be, exit 78, secret not shown', async () => {
    const file = join(dir, 'typo-sidecar.yaml');
    writeFileSync(
      file,
      stringify({
        service: 'orders',
        sts: { issuer: 'http://127.0.0.1:9', clientId: 'orders', clientSecrte: 'do-not-print-me-0123' },
        policy: { file: FIXTURE_POLICY },
      }),
    );
    const { code, stderr } = await runBaton(['sidecar', '--config', file]);
    assert.equal(code, 78);
    assert.match(stderr, /sts\.clientSecrte: unknown key; did you mean 'sts\.clientSecret'\?/);
    assert.doesNotMatch(stderr, /do-not-print-me/);
  });

  it('two introspecting issuers whose token prefixes overlap stop the sidecar at load, exit 78, naming the key, secret not shown', async () => {
    const file = join(dir, 'prefixes-sidecar.yaml');
    const introspection = (tokenPrefix: string) => ({
      clientId: 'baton',
      clientSecret: 'do-not-print-me-0123',
      tokenPrefix,
    });
    writeFileSync(
      file,
      stringify({
        service: 'gateway',
        sts: { issuer: 'https://127.0.0.1:9', clientId: 'gateway' },
        policy: { file: FIXTURE_POLICY },
        externalIssuers: [
          { issuer: 'https://a.example', introspection: introspection('at_') },
          { issuer: 'https://b.example', introspection: introspection('at_b_') },
        ],
      }),
    );
    const { code, stderr } = await runBaton(['sidecar', '--config', file]);
    assert.equal(code, 78, stderr);
    assert.match(
      stderr,
      /externalIssuers\.1\.introspection\.tokenPrefix: expected a prefix distinct from every other issuer's.*got "at_b_" and externalIssuers\.0\.introspection\.tokenPrefix "at_"/,
    );
    assert.doesNotMatch(stderr, /do-not-print-me/);
  });

  it('a sidecar config whose fields contradict each other stops at load, exit 78, before any port is bound', async () => {
    const file = join(dir, 'breaker-sidecar.yaml');
    writeFileSync(
      file,
      stringify({
        service: 'orders',
        inbound: { port: 0 },
        outbound: { port: 0 },
        admin: { port: 0 },
        sts: { issuer: 'https://127.0.0.1:9', clientId: 'orders' },
        policy: { file: FIXTURE_POLICY },
        exchange: { breaker: { openMs: 5000, maxOpenMs: 1000 } },
      }),
    );
    // Bounded: a sidecar that got past its config would keep running.
    const running = startBaton(['sidecar', '--config', file]);
    const code = await Promise.race([
      running.exited,
      new Promise<'running'>((resolve) => setTimeout(() => resolve('running'), 15_000).unref()),
    ]);
    if (code === 'running') await running.stop('SIGKILL');
    assert.equal(code, 78, 'expected exit 78 at load; the sidecar was still running after 15 s');
    assert.match(running.stderr(), /exchange\.breaker\.maxOpenMs: expected at least exchange\.breaker\.openMs/);
  });

  it('the STS refuses a public key mounted in keys.dir instead of generating a key of its own', async () => {
    const keysDir = join(dir, 'sts-keys');
    mkdirSync(keysDir);
    writeFileSync(
      join(keysDir, 'signing.pem'),
      generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string,
    );
    const file = join(dir, 'sts.yaml');
    writeFileSync(
      file,
      stringify({
        issuer: 'http://127.0.0.1:9',
        port: 0,
        transport: { mode: 'plaintext' },
        policy: { file: FIXTURE_POLICY },
        keys: { dir: keysDir },
        clients: [{ id: 'gateway', secret: 'a-secret-of-sixteen-chars' }],
      }),
    );
    const { code, stderr } = await runBaton(['sts', '--config', file]);
    assert.equal(code, 78);
    assert.match(stderr, /signing\.pem: keys\.dir: expected a PEM private key .* got a PEM PUBLIC KEY/);
    assert.deepEqual(readdirSync(keysDir), ['signing.pem']);
  });
});
