/**
 * A sidecar that is not ready names the cause and the fix, in its NOT READY
 * line and in /readyz, not what follows from it: a workload certificate
 * that is missing, unreadable, expired or not yet valid (the file and its
 * validity dates), or an STS it cannot use (the URL and the error:
 * connection refused, a TLS peer that is not the STS, an HTTP status).
 * Real processes: the demo mesh's STS and policy server, both healthy, and
 * one more `orders` sidecar per case.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { parse, stringify } from 'yaml';
import { issueSvid } from '../../src/identity/dev-ca.ts';
import { type Mesh, startMesh } from '../../src/demo/mesh.ts';
import { freePort, listenOnLoopback } from '../helpers/net.ts';
import { type RunningProcess, startBaton } from '../helpers/process.ts';

type Files = { certFile: string; keyFile: string; bundleFile: string };

describe('NOT READY names the cause and the fix', { timeout: 300_000 }, () => {
  let mesh: Mesh;
  const running: RunningProcess[] = [];
  before(async () => {
    mesh = await startMesh();
  });
  after(async () => {
    await Promise.all(running.map((p) => p.stop()));
    await mesh?.stop();
  });

  /** The mesh's orders identity copied into a folder of the case, the certificate replaced by one with `window` when given. */
  async function identity(name: string, window?: { notBefore: Date; notAfter: Date }): Promise<Files> {
    const ids = mesh.identities;
    assert.ok(ids !== undefined, 'the demo mesh runs in mtls mode');
    const dir = join(mesh.dir, `case-${name}`, 'identity');
    mkdirSync(dir, { recursive: true });
    const files = { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), bundleFile: join(dir, 'ca.crt') };
    copyFileSync(join(ids.dir, 'orders', 'ca.crt'), files.bundleFile);
    if (window === undefined) {
      copyFileSync(join(ids.dir, 'orders', 'tls.crt'), files.certFile);
      copyFileSync(join(ids.dir, 'orders', 'tls.key'), files.keyFile);
    } else {
      const svid = await issueSvid(ids.ca, {
        spiffeId: ids.map.idOf('orders'),
        dnsNames: ['localhost'],
        ipAddresses: ['127.0.0.1'],
        ...window,
      });
      writeFileSync(files.certFile, svid.certPem);
      writeFileSync(files.keyFile, svid.keyPem, { mode: 0o600 });
    }
    return files;
  }

  /** Starts an orders sidecar like the mesh's own, on ports of its own, with these identity files and STS; its first NOT READY line and /readyz. */
  async function notReady(
    name: string,
    files: Files,
    sts?: string,
  ): Promise<{ line: string; readyz: string; output: () => string }> {
    const config = parse(readFileSync(join(mesh.dir, 'orders-sidecar.yaml'), 'utf8')) as Record<string, unknown> & {
      inbound: Record<string, unknown>;
      sts: Record<string, unknown>;
      policy: Record<string, unknown>;
    };
    const admin = await freePort();
    const dir = join(mesh.dir, `case-${name}`);
    mkdirSync(dir, { recursive: true });
    // Its own state file: the mesh's orders sidecar keeps its own.
    const { stateFile: _stateFile, ...policy } = config.policy;
    writeFileSync(
      join(dir, 'sidecar.yaml'),
      stringify({
        ...config,
        inbound: { ...config.inbound, port: await freePort() },
        outbound: { port: await freePort() },
        admin: { port: admin },
        identity: { ...files, pollIntervalMs: 200 },
        sts: { ...config.sts, ...(sts === undefined ? {} : { issuer: sts }) },
        policy,
      }),
    );
    const sidecar = startBaton(['sidecar', '--config', join(dir, 'sidecar.yaml')]);
    running.push(sidecar);
    const line = await sidecar.waitForOutput(/^baton sidecar orders: NOT READY: .*$/m, 60_000);
    const answer = await request(`http://127.0.0.1:${admin}/readyz`);
    const readyz = await answer.body.text();
    assert.equal(answer.statusCode, 503, readyz);
    return { line, readyz, output: () => sidecar.stderr() };
  }

  // What a missing certificate used to be blamed on: the policy server it cannot reach without one.
  const CONSEQUENCES = /BATON_POLICY_SERVER_UNAVAILABLE|call-graph policy|STS /;

  it('an expired certificate: the file, "expired", its validity dates and what to do; /readyz says identity: expired', async () => {
    const notBefore = new Date(Date.now() - 2 * 3_600_000);
    const notAfter = new Date(Date.now() - 10 * 60_000);
    const files = await identity('expired', { notBefore, notAfter });
    const { line, readyz } = await notReady('expired', files);
    assert.ok(line.includes(`workload certificate expired: ${files.certFile}`), line);
    assert.ok(
      line.includes(`valid from ${notBefore.toISOString().slice(0, 16)}`) &&
        line.includes(`to ${notAfter.toISOString().slice(0, 16)}`),
      line,
    );
    assert.match(line, /Renew it/);
    assert.doesNotMatch(line, CONSEQUENCES);
    assert.match(readyz, /^identity: expired, expires in -\d+s, BATON_IDENTITY_EXPIRED/m);
    assert.ok(readyz.includes(`workload certificate expired: ${files.certFile}`), readyz);
  });

  it('a certificate not valid yet: the file, its dates, and the clock to check', async () => {
    const notBefore = new Date(Date.now() + 3_600_000);
    const files = await identity('future', { notBefore, notAfter: new Date(notBefore.getTime() + 3_600_000) });
    const { line, readyz } = await notReady('future', files);
    assert.ok(line.includes(`workload certificate not valid yet: ${files.certFile}`), line);
    assert.ok(line.includes(`valid from ${notBefore.toISOString().slice(0, 16)}`), line);
    assert.match(line, /clock/);
    assert.doesNotMatch(line, CONSEQUENCES);
    assert.match(readyz, /^identity: not_yet_valid, .*BATON_IDENTITY_NOT_YET_VALID/m);
  });

  it('a missing certificate: the file and ENOENT, and where the identity should come from', async () => {
    const dir = join(mesh.dir, 'case-missing', 'nothing-here');
    const files = { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), bundleFile: join(dir, 'ca.crt') };
    const { line, readyz } = await notReady('missing', files);
    assert.ok(
      line.includes(`no workload certificate: expected a certificate file at ${files.certFile}, got ENOENT`),
      line,
    );
    assert.match(line, /Mount the identity there/);
    assert.doesNotMatch(line, CONSEQUENCES);
    assert.match(readyz, /^identity: missing, BATON_IDENTITY_MISSING/m);
  });

  it('an STS URL nothing listens on: the URL and ECONNREFUSED, and which setting to check', async () => {
    const port = await freePort();
    const { line, readyz } = await notReady('refused', await identity('refused'), `https://127.0.0.1:${port}`);
    assert.ok(line.includes(`STS https://127.0.0.1:${port} not usable: `), line);
    assert.ok(line.includes(`https://127.0.0.1:${port}/.well-known/oauth-authorization-server`), line);
    assert.match(line, /ECONNREFUSED/);
    assert.match(line, /check sts\.issuer and that the STS is up/);
    assert.match(readyz, /waiting for sts keys, token endpoint/);
    assert.match(readyz, /ECONNREFUSED/);
  });

  it('an STS URL that reaches another workload: the TLS refusal naming the SPIFFE ID expected and the one presented', async (t) => {
    // A workload of the mesh's trust domain that is not the STS: billing.
    const ids = mesh.identities;
    assert.ok(ids !== undefined);
    const billing = await issueSvid(ids.ca, {
      spiffeId: ids.map.idOf('billing'),
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3_600_000),
    });
    const server = createServer(
      { cert: billing.certPem, key: billing.keyPem, ca: ids.bundle, requestCert: true, rejectUnauthorized: false },
      (_req, res) => res.end('{}'),
    );
    const port = await listenOnLoopback(server);
    t.after(() => server.close());
    const elsewhere = `https://127.0.0.1:${port}`;
    const { line } = await notReady('wrong-peer', await identity('wrong-peer'), elsewhere);
    assert.ok(line.includes(`STS ${elsewhere} not usable: `), line);
    assert.match(
      line,
      /expected the peer certificate to name spiffe:\/\/\S+\/baton-sts, got spiffe:\/\/\S+\/billing \(BATON_UPSTREAM_IDENTITY_MISMATCH\)/,
    );
  });

  it('an STS URL with a path the STS does not serve: the metadata URL and the HTTP status', async () => {
    const { line } = await notReady('status', await identity('status'), `${mesh.stsUrl}/no-such-tenant`);
    assert.ok(
      line.includes(
        `${mesh.stsUrl}/.well-known/oauth-authorization-server/no-such-tenant: expected status 200, got 404`,
      ),
      line,
    );
  });
});
