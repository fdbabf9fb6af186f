/**
 * docs/nginx.md's way of filling examples/nginx/ (envsubst of the named
 * ${BATON_*} variables), run as written with only the paths moved into a
 * scratch folder, gives what test/helpers/authz-nginx.ts runs through the
 * three-hop chain, and a configuration real nginx accepts (`nginx -t`).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { writeDevIdentities } from '../../src/identity/dev-ca.ts';
import { spiffeId } from '../../src/identity/spiffe-id.ts';
import { fillTemplate, NGINX_EXAMPLES } from '../helpers/authz-nginx.ts';
import { requireProgram } from '../helpers/native-proxies.ts';

const DOC = fileURLToPath(new URL('../../docs/nginx.md', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'baton-nginx-doc-'));
chmodSync(scratch, 0o755);
after(() => rmSync(scratch, { recursive: true, force: true }));

/** The shell block of docs/nginx.md that fills the templates. */
function documentedCommands(): string {
  const blocks = [...readFileSync(DOC, 'utf8').matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] as string);
  const block = blocks.find((b) => b.includes('envsubst'));
  assert.ok(block, 'docs/nginx.md has a sh block filling the templates with envsubst');
  return block;
}

describe('docs/nginx.md fills examples/nginx/', () => {
  it('into the configuration the tests run, and nginx accepts it', async () => {
    const nginx = requireProgram('nginx');
    const envsubst = spawnSync('sh', ['-c', 'command -v envsubst'], { encoding: 'utf8' });
    assert.equal(envsubst.status, 0, 'envsubst is missing: apt-get install -y gettext-base');
    const etc = join(scratch, 'etc-nginx');
    const secrets = join(scratch, 'spiffe');
    await writeDevIdentities({
      dir: secrets,
      trustDomain: 'cluster.local',
      services: [{ service: 'orders', spiffeId: spiffeId('spiffe://cluster.local/ns/shop/sa/orders') }],
      validForMs: 3_600_000,
      layout: 'csi-driver-spiffe',
      now: new Date(),
    });
    mkdirSync(join(scratch, 'shm'));
    const script = documentedCommands()
      .replaceAll('/etc/nginx', etc)
      .replaceAll('/var/run/secrets/spiffe.io', join(secrets, 'orders'))
      .replaceAll('/dev/shm', join(scratch, 'shm'))
      // nginx resolves upstream names when it loads its configuration; this machine has no cluster DNS.
      .replaceAll('payments.shop.svc', '127.0.0.1')
      .replace(
        /^nginx -t$/m,
        `${nginx} -t -p ${etc} -c ${etc}/nginx.conf -e ${scratch}/error.log -g 'pid ${scratch}/nginx.pid;'`,
      );
    const run = spawnSync('sh', ['-ec', script], { cwd: NGINX_EXAMPLES, encoding: 'utf8', timeout: 30_000 });
    assert.equal(run.status, 0, `${script}\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stderr, /syntax is ok/);

    const values = {
      BATON_AUTHZ: '127.0.0.1:7074',
      BATON_APP: '127.0.0.1:8080',
      BATON_LISTEN: '0.0.0.0:8443',
      BATON_OUTBOUND_LISTEN: '127.0.0.1:7071',
      BATON_CERT: join(secrets, 'orders', 'tls.crt'),
      BATON_KEY: join(secrets, 'orders', 'tls.key'),
      BATON_BUNDLE: join(secrets, 'orders', 'ca.crt'),
      BATON_CACHE_DIR: join(scratch, 'shm', 'baton-decisions'),
      BATON_DECISION_CACHE: 'baton_decisions',
    };
    const filled = (template: string, extra: Record<string, string> = {}): string =>
      fillTemplate(readFileSync(join(NGINX_EXAMPLES, template), 'utf8'), { ...values, ...extra }, template);
    assert.equal(readFileSync(join(etc, 'baton/http.conf'), 'utf8'), filled('baton/http.conf.template'));
    assert.equal(readFileSync(join(etc, 'conf.d/service.conf'), 'utf8'), filled('conf.d/service.conf.template'));
    assert.equal(
      readFileSync(join(etc, 'conf.d/upstream-payments.conf'), 'utf8'),
      filled('conf.d/upstream.conf.template', { BATON_TARGET: 'payments', BATON_TARGET_ADDRESS: '127.0.0.1:8443' }),
    );
    for (const file of ['http.conf', 'inbound-check.conf', 'identity.conf', 'refusals.conf'])
      assert.doesNotMatch(
        readFileSync(join(etc, 'baton', file), 'utf8'),
        /\$\{BATON_[A-Z_]+\}/,
        `${file}: every placeholder filled`,
      );
  });
});
