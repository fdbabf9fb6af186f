import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { loadAuthzConfig } from '../../src/authz/config.ts';
import { runCli } from '../helpers/cli.ts';

const POLICY = fileURLToPath(new URL('../../examples/shop.callgraph.yaml', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'baton-authz-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, config: Record<string, unknown>): string {
  const path = join(dir, name);
  writeFileSync(path, stringify(config));
  return path;
}

const MINIMAL = {
  service: 'orders',
  sts: { issuer: 'https://baton-sts:7000', clientId: 'orders' },
  policy: { file: POLICY },
};

describe('baton authz configuration', () => {
  it("defaults to both front ends on loopback, the admin port apart, mtls, and the sidecar's blocks", () => {
    const config = loadAuthzConfig({ file: file('minimal.yaml', MINIMAL) });
    assert.equal(config.host, '127.0.0.1');
    assert.deepEqual(
      [
        config.grpc.enabled,
        config.grpc.port,
        config.http.enabled,
        config.http.port,
        config.http.pathPrefix,
        config.admin.port,
      ],
      [true, 7073, true, 7074, '/baton-authz', 7075],
    );
    assert.equal(config.transport.mode, 'mtls');
    assert.equal(config.inbound.peerCertificate, 'optional');
    assert.equal(config.exchange.expiryMarginSeconds, 30);
    assert.ok(Object.isFrozen(config));
  });

  it("refuses contradictions at load: no port to ask on, two ports alike, the sidecar's rules on the shared blocks", () => {
    const refused = (config: Record<string, unknown>): string => {
      try {
        loadAuthzConfig({ file: file('bad.yaml', config) });
      } catch (error) {
        return (error as Error).message;
      }
      return 'accepted';
    };
    assert.match(refused({ ...MINIMAL, grpc: { enabled: false }, http: { enabled: false } }), /grpc\.enabled/);
    assert.match(refused({ ...MINIMAL, grpc: { port: 9000 }, http: { port: 9000 } }), /http\.port/);
    assert.match(
      refused({ ...MINIMAL, sts: { issuer: 'http://baton-sts:7000', clientId: 'orders' } }),
      /sts\.issuer: expected an https:\/\/ URL in transport\.mode mtls/,
    );
    assert.match(refused({ ...MINIMAL, http: { pathPrefix: 'baton' } }), /http\.pathPrefix/);
    assert.match(refused({ ...MINIMAL, inbound: { peerCertificate: 'sometimes' } }), /inbound\.peerCertificate/);
  });

  it('--help lists the flags with their defaults and every key, from the schema', async () => {
    const { code, stdout } = await runCli(['authz', '--help']);
    assert.equal(code, 0);
    assert.match(stdout, /^Usage: baton authz --config FILE/);
    assert.match(stdout, /--grpc-port N\s+sets grpc\.port \(default 7073\)/);
    assert.match(stdout, /--http-port N\s+sets http\.port \(default 7074\)/);
    assert.match(stdout, /^ {2}http\.cacheMaxAgeSeconds\s+default 5$/m);
    assert.match(stdout, /env BATON_INBOUND__PEER_CERTIFICATE/);
  });

  it('a bad config stops it at load with exit 78, before any port is bound', async () => {
    const { code, stderr } = await runCli(['authz', '--config', file('typo.yaml', { ...MINIMAL, grcp: { port: 1 } })]);
    assert.equal(code, 78);
    assert.match(stderr, /grcp: unknown key; did you mean 'grpc'\?/);
  });
});
