/**
 * A misspelt BATON_* variable stops every part at start, exit 78, with a
 * "did you mean", as the same typo in the YAML file does: compose and
 * Kubernetes configure through the environment, and an ignored typo starts
 * a part without the setting. Real processes, each with a configuration it
 * would otherwise run with.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { FIXTURE_POLICY } from '../helpers/sts.ts';
import { freePort } from '../helpers/net.ts';
import { runBaton, startBaton } from '../helpers/process.ts';

const dir = mkdtempSync(join(tmpdir(), 'baton-env-typos-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs baton until it exits, or gives up after `ms` (a part that starts keeps running): the exit code or 'running'. */
async function exitWithin(
  args: readonly string[],
  env: Record<string, string>,
  ms = 15_000,
): Promise<{ code: number | null | 'running'; stderr: string }> {
  const process = startBaton(args, env);
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    process.exited,
    new Promise<'running'>((resolve) => (timer = setTimeout(() => resolve('running'), ms))),
  ]);
  clearTimeout(timer);
  if (code === 'running') await process.stop();
  return { code, stderr: process.stderr() };
}

describe('a misspelt BATON_ variable stops the part at start (exit 78, "did you mean")', () => {
  const files: Record<string, string> = {};
  before(async () => {
    files.sidecar = join(dir, 'sidecar.yaml');
    writeFileSync(
      files.sidecar,
      stringify({
        service: 'gateway',
        inbound: { port: await freePort(), app: 'http://127.0.0.1:9' },
        outbound: { port: await freePort() },
        admin: { port: await freePort() },
        transport: { mode: 'plaintext' },
        sts: { issuer: 'http://127.0.0.1:9', clientId: 'gateway', clientSecret: 'a-secret-for-the-test' },
        policy: { file: FIXTURE_POLICY },
      }),
    );
    files.sts = join(dir, 'sts.yaml');
    writeFileSync(
      files.sts,
      stringify({
        issuer: 'http://127.0.0.1:9',
        port: await freePort(),
        transport: { mode: 'plaintext' },
        policy: { file: FIXTURE_POLICY },
      }),
    );
    files.signingKey = join(dir, 'policy-signing.key.pem');
    writeFileSync(
      files.signingKey,
      generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
    );
    const certs = await runBaton(['certs', '--out', join(dir, 'certs'), 'baton-injector']);
    assert.equal(certs.code, 0, certs.stderr);
  });

  const cases: Array<{ part: string; args: () => string[]; typo: string; meant: string }> = [
    {
      part: 'sidecar',
      args: () => ['sidecar', '--config', files.sidecar as string],
      typo: 'BATON_STS__ISUER',
      meant: 'BATON_STS__ISSUER',
    },
    {
      part: 'sts',
      args: () => ['sts', '--config', files.sts as string],
      typo: 'BATON_TOKEN_TTL_SECOND',
      meant: 'BATON_TOKEN_TTL_SECONDS',
    },
    {
      part: 'policy-server',
      args: () => [
        'policy-server',
        '--policy',
        FIXTURE_POLICY,
        '--signing-key',
        files.signingKey as string,
        '--transport',
        'plaintext',
        '--port',
        '0',
      ],
      typo: 'BATON_REISSUE_SECOND',
      meant: 'BATON_REISSUE_SECONDS',
    },
    {
      part: 'injector',
      args: () => [
        'injector',
        '--tls-cert',
        join(dir, 'certs', 'baton-injector', 'tls.crt'),
        '--tls-key',
        join(dir, 'certs', 'baton-injector', 'tls.key'),
        '--port',
        '0',
      ],
      typo: 'BATON_SIDECAR__LOG_LEVL',
      meant: 'BATON_SIDECAR__LOG_LEVEL',
    },
  ];

  for (const { part, args, typo, meant } of cases) {
    it(`baton ${part}: ${typo}=… exits 78 naming ${meant}`, async () => {
      // The typo's value is never shown: it may be a secret set under a wrong name.
      const { code, stderr } = await exitWithin(args(), { [typo]: 'value-not-to-echo' });
      assert.equal(code, 78, stderr);
      assert.ok(
        stderr.includes(`environment variable ${typo}: no baton setting has this name; did you mean ${meant}?`),
        stderr,
      );
      assert.doesNotMatch(stderr, /value-not-to-echo/);
    });
  }

  it('baton token check --config: a misspelt variable exits 78 too', async () => {
    const { code, stderr } = await exitWithin(['token', 'check', '--config', files.sidecar as string, 'x'], {
      BATON_EXTERNAL_ISUERS: '[]',
    });
    assert.equal(code, 78, stderr);
    assert.match(stderr, /did you mean BATON_EXTERNAL_ISSUERS\?/);
  });

  it("leaves alone another part's variable, the image's BATON_HEALTHCHECK_URL and Kubernetes service links: the sidecar starts", async () => {
    const sidecar = startBaton(['sidecar', '--config', files.sidecar as string], {
      BATON_SIDECAR__IMAGE: 'ghcr.io/baton-dev/baton-mesh:0.1.0',
      BATON_ISSUER: 'http://127.0.0.1:9',
      BATON_HEALTHCHECK_URL: 'http://127.0.0.1:7072/readyz',
      BATON_STS_SERVICE_HOST: '10.96.0.7',
      BATON_STS_SERVICE_PORT: '7000',
      BATON_STS_SERVICE_PORT_HTTPS: '7000',
      BATON_STS_PORT: 'tcp://10.96.0.7:7000',
      BATON_STS_PORT_7000_TCP: 'tcp://10.96.0.7:7000',
      BATON_STS_PORT_7000_TCP_PROTO: 'tcp',
      BATON_STS_PORT_7000_TCP_PORT: '7000',
      BATON_STS_PORT_7000_TCP_ADDR: '10.96.0.7',
    });
    try {
      await sidecar.waitForOutput(/"msg":"sidecar listening"/, 30_000);
    } finally {
      await sidecar.stop();
    }
  });
});
