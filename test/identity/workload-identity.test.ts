import assert from 'node:assert/strict';
import { once } from 'node:events';
import { chmodSync, writeFileSync } from 'node:fs';
import { createServer as createTlsServer, connect, type TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { parseSvid } from '../../src/identity/svid.ts';
import { clientTlsOptions, peerIdentity, serverTlsOptions } from '../../src/identity/tls.ts';
import {
  createWorkloadIdentity,
  readSvidFiles,
  type WorkloadIdentityFiles,
} from '../../src/identity/workload-identity.ts';
import { makeTestIdentities, otherCa, type TestIdentities } from '../helpers/identities.ts';
import { captureLogs } from '../helpers/logs.ts';

const logger = pino({ level: 'silent' });
const MISSING = {
  certFile: '/nonexistent/tls.crt',
  keyFile: '/nonexistent/tls.key',
  bundleFile: '/nonexistent/ca.crt',
};

/** The workload identity over `files`: polled each minute, near expiry in the last sixth, silent, on the wall clock, unless overridden. */
function identityFrom(
  files: WorkloadIdentityFiles,
  overrides: Partial<Parameters<typeof createWorkloadIdentity>[0]> = {},
): ReturnType<typeof createWorkloadIdentity> {
  return createWorkloadIdentity({
    ...files,
    pollIntervalMs: 60_000,
    nearExpiryFraction: 1 / 6,
    logger,
    now: Date.now,
    ...overrides,
  });
}

describe('X509-SVID loading', () => {
  let ids: TestIdentities;
  before(async () => {
    ids = await makeTestIdentities(['orders', 'payments']);
  });
  after(() => ids.cleanup());

  it('loads a service identity with its SPIFFE ID, validity and RFC 8705 thumbprint', () => {
    const svid = parseSvid(readSvidFiles(ids.files('orders')), Date.now());
    assert.equal(svid.spiffeId, ids.map.idOf('orders'));
    assert.match(svid.thumbprint, /^[A-Za-z0-9_-]{43}$/);
    assert.ok(svid.notAfter > Date.now());
  });

  it('refuses a key that is not the certificate’s', () => {
    const pem = readSvidFiles(ids.files('orders'));
    const other = readSvidFiles(ids.files('payments'));
    assert.throws(() => parseSvid({ ...pem, key: other.key }, Date.now()), { code: 'BATON_IDENTITY_INVALID' });
  });

  it('refuses a certificate from another CA than the bundle’s', async () => {
    const foreign = await ids.issue(ids.map.idOf('orders'), { ca: await otherCa() });
    const pem = readSvidFiles(ids.files('orders'));
    assert.throws(() => parseSvid({ cert: foreign.certPem, key: foreign.keyPem, bundle: pem.bundle }, Date.now()), {
      code: 'BATON_IDENTITY_UNTRUSTED',
    });
  });

  it('refuses an expired certificate and one not yet valid, each with its own code', async () => {
    const pem = readSvidFiles(ids.files('orders'));
    const expired = await ids.issue(ids.map.idOf('orders'), {
      notBefore: new Date(Date.now() - 7_200_000),
      notAfter: new Date(Date.now() - 3_600_000),
    });
    assert.throws(() => parseSvid({ cert: expired.certPem, key: expired.keyPem, bundle: pem.bundle }, Date.now()), {
      code: 'BATON_IDENTITY_EXPIRED',
    });
    const future = await ids.issue(ids.map.idOf('orders'), {
      notBefore: new Date(Date.now() + 3_600_000),
      notAfter: new Date(Date.now() + 7_200_000),
    });
    assert.throws(() => parseSvid({ cert: future.certPem, key: future.keyPem, bundle: pem.bundle }, Date.now()), {
      code: 'BATON_IDENTITY_NOT_YET_VALID',
    });
  });

  it('refuses a CA certificate as a workload identity', () => {
    assert.throws(() => parseSvid({ cert: ids.ca.certPem, key: ids.ca.keyPem, bundle: ids.ca.certPem }, Date.now()), {
      code: 'BATON_IDENTITY_INVALID',
    });
  });
});

describe('workload identity files', () => {
  let ids: TestIdentities;
  before(async () => {
    ids = await makeTestIdentities(['orders']);
  });
  after(() => ids.cleanup());

  it('is missing, not ready, when the files are absent', () => {
    const identity = identityFrom(MISSING, { pollIntervalMs: 1000 });
    assert.equal(identity.current(), undefined);
    const status = identity.status();
    assert.equal(status.state, 'missing');
    assert.equal(status.reason, 'BATON_IDENTITY_MISSING');
    assert.match(String(status.detail), /\/nonexistent\/tls\.crt/);
    identity.close();
  });

  it('is expired, not missing, when the files hold an expired certificate from the start; the problem names the file, the dates and the fix', async () => {
    const own = await makeTestIdentities(['orders']);
    try {
      const files = own.files('orders');
      const notBefore = new Date(Date.now() - 7_200_000);
      const notAfter = new Date(Date.now() - 3_600_000);
      const expired = await own.issue(own.map.idOf('orders'), { notBefore, notAfter });
      writeFileSync(files.certFile, expired.certPem);
      writeFileSync(files.keyFile, expired.keyPem);
      const identity = identityFrom(files);
      const status = identity.status();
      assert.equal(status.state, 'expired');
      assert.equal(status.reason, 'BATON_IDENTITY_EXPIRED');
      assert.equal(status.notAfter, Math.floor(notAfter.getTime() / 1000) * 1000);
      assert.ok(
        status.problem?.startsWith(
          `workload certificate expired: ${files.certFile} (${own.map.idOf('orders')}, valid from ${new Date(Math.floor(notBefore.getTime() / 1000) * 1000).toISOString()}`,
        ),
        status.problem,
      );
      assert.match(String(status.problem), /\)\. Renew it/);
      // Announced once per change: the sentence holds no clock reading, so it stays the same minute after minute.
      const later = identityFrom(files, { now: () => Date.now() + 600_000 });
      assert.equal(later.status().problem, status.problem);
      later.close();
      identity.close();
    } finally {
      own.cleanup();
    }
  });

  it('is missing with the file and ENOENT in the problem, and no problem once ready', () => {
    const identity = identityFrom(MISSING, { pollIntervalMs: 1000 });
    assert.equal(
      identity.status().problem,
      "no workload certificate: expected a certificate file at /nonexistent/tls.crt, got ENOENT. Mount the identity there (csi-driver-spiffe or SPIRE's spiffe-helper; for development 'baton certs'), or point identity.certFile, identity.keyFile and identity.bundleFile at it",
    );
    identity.close();
    const ready = identityFrom(ids.files('orders'), { pollIntervalMs: 1000 });
    assert.equal(ready.status().problem, undefined);
    ready.close();
  });

  it(
    'names a file this user cannot read, and the fsGroup fix',
    { skip: process.getuid?.() === 0 ? 'root reads any file: run as another user to check EACCES' : false },
    async () => {
      const own = await makeTestIdentities(['orders']);
      try {
        const files = own.files('orders');
        chmodSync(files.keyFile, 0o000);
        const identity = identityFrom(files);
        assert.equal(identity.status().state, 'missing');
        assert.match(
          String(identity.status().problem),
          new RegExp(
            `^workload identity unreadable: expected a private key file at ${files.keyFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, got EACCES\\. .*fsGroup`,
          ),
        );
        identity.close();
      } finally {
        own.cleanup();
      }
    },
  );

  it('picks up a rotation, and keeps the old identity while the new files do not match', async () => {
    const files = ids.files('orders');
    const identity = identityFrom(files, { pollIntervalMs: 100 });
    const first = identity.current();
    assert.ok(first);
    const next = await ids.issue(ids.map.idOf('orders'));
    // Half-way through a rotation: the new certificate, the old key.
    writeFileSync(files.certFile, next.certPem);
    identity.reload();
    assert.equal(identity.current()?.thumbprint, first.thumbprint);
    assert.equal(identity.status().reason, 'BATON_IDENTITY_INVALID');
    const rotated = new Promise((resolve) => identity.onRotate(resolve));
    writeFileSync(files.keyFile, next.keyPem);
    // Found by the watcher or the poll, without an explicit reload. The deadline's timer also keeps this
    // process alive while the identity's own poll (unref'd, as a sidecar's servers keep it alive) comes
    // round: on Node.js 22.18 the file watcher does not report this write, and the loop would end first.
    let deadline: NodeJS.Timeout | undefined;
    await Promise.race([
      rotated,
      new Promise(
        (_, reject) =>
          (deadline = setTimeout(
            () => reject(new Error('expected the rotation to be found within 5 s, got none')),
            5_000,
          )),
      ),
    ]);
    clearTimeout(deadline);
    assert.notEqual(identity.current()?.thumbprint, first.thumbprint);
    assert.equal(identity.status().state, 'ready');
    identity.close();
  });

  it("refuses a rotation to another service's certificate: keeps its own while valid, says so once, counts it, and is not ready naming the file and both IDs once its own expires", async () => {
    const own = await makeTestIdentities(['orders', 'payments']);
    try {
      const files = own.files('orders');
      const logs = captureLogs('orders');
      let clock = Date.now();
      const identity = identityFrom(files, { logger: logs.logger, now: () => clock });
      const first = identity.current();
      assert.ok(first);
      const rotated: string[] = [];
      identity.onRotate((svid) => rotated.push(svid.spiffeId));
      // Another service's certificate and key, whole and valid, written into this workload's files.
      const other = readSvidFiles(own.files('payments'));
      writeFileSync(files.keyFile, other.key);
      writeFileSync(files.certFile, other.cert);
      for (let i = 0; i < 3; i++) identity.reload();
      assert.equal(identity.current()?.spiffeId, own.map.idOf('orders'), 'the identity in use is kept');
      assert.equal(identity.current()?.thumbprint, first.thumbprint);
      assert.deepEqual(rotated, [], 'nothing was told of a rotation');
      const ready = identity.status();
      assert.equal(ready.state, 'ready');
      assert.equal(ready.reason, 'BATON_IDENTITY_ID_CHANGED');
      assert.equal(ready.refusedRotations, 1, 'one set of files, counted once however often it is read');
      const refusals = logs.lines.filter((line) => line.event === 'identity_rotation_refused');
      assert.equal(refusals.length, 1);
      assert.equal(refusals[0]?.level, 'error');
      assert.deepEqual(
        [refusals[0]?.file, refusals[0]?.current, refusals[0]?.offered],
        [files.certFile, own.map.idOf('orders'), own.map.idOf('payments')],
      );
      assert.ok(!logs.raw.join('').includes('PRIVATE KEY'));
      // Its own certificate runs out: not ready, and the reason names the file and both IDs.
      clock = first.notAfter + 1;
      assert.equal(identity.current(), undefined);
      const expired = identity.status();
      assert.equal(expired.state, 'expired');
      assert.equal(expired.reason, 'BATON_IDENTITY_ID_CHANGED');
      for (const part of [files.certFile, own.map.idOf('orders'), own.map.idOf('payments')])
        assert.ok(String(expired.detail).includes(part), `detail names ${part}: ${expired.detail}`);
      identity.close();
    } finally {
      own.cleanup();
    }
  });

  it('reports near expiry within the last share of the lifetime, and expired after it', async () => {
    const files = ids.files('orders');
    const svid = parseSvid(readSvidFiles(files), Date.now());
    let clock = svid.notAfter - 60_000; // one minute left of an hour
    const identity = identityFrom(files, { now: () => clock });
    assert.equal(identity.status().state, 'near_expiry');
    clock = svid.notAfter + 1;
    assert.equal(identity.current(), undefined);
    assert.equal(identity.status().state, 'expired');
    identity.close();
  });
});

describe('mutual TLS with SPIFFE peer checks', () => {
  let ids: TestIdentities;
  let server: ReturnType<typeof createTlsServer>;
  let port: number;
  const seen: Array<string | undefined> = [];
  before(async () => {
    ids = await makeTestIdentities(['orders', 'payments', 'gateway']);
    const payments = parseSvid(readSvidFiles(ids.files('payments')), Date.now());
    server = createTlsServer(serverTlsOptions(payments, 'required'), (socket: TLSSocket) => {
      try {
        seen.push(peerIdentity(socket)?.spiffeId);
      } catch (error) {
        seen.push((error as { code?: string }).code);
      }
      socket.end('hello');
    });
    server.on('tlsClientError', () => {});
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as { port: number }).port;
  });
  after(() => {
    server.close();
    ids.cleanup();
  });

  const dial = (options: object): Promise<string> =>
    new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, ...options });
      let body = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (body += chunk));
      socket.on('end', () => resolve(body));
      socket.on('error', reject);
    });

  it('connects when both sides present identities from the bundle and the server is the expected service', async () => {
    const orders = parseSvid(readSvidFiles(ids.files('orders')), Date.now());
    assert.equal(await dial(clientTlsOptions(orders, ids.map.idOf('payments'), orders.pem.bundle)), 'hello');
    assert.equal(seen.at(-1), ids.map.idOf('orders'));
  });

  it('refuses a server whose certificate names another service, before sending anything', async () => {
    const orders = parseSvid(readSvidFiles(ids.files('orders')), Date.now());
    const before = seen.length;
    await assert.rejects(dial(clientTlsOptions(orders, ids.map.idOf('gateway'), orders.pem.bundle)), {
      code: 'BATON_UPSTREAM_IDENTITY_MISMATCH',
      reason: 'other-id',
    });
    assert.equal(seen.length, before, 'the server handler never ran for the refused connection');
  });

  it('refuses a client with no certificate, and one from another CA, when certificates are required', async () => {
    const orders = parseSvid(readSvidFiles(ids.files('orders')), Date.now());
    const before = seen.length;
    // In TLS 1.3 the client finishes its side first; the server's refusal arrives as an alert or a close.
    const outcome = (options: object) => dial(options).catch((error: unknown) => error);
    assert.notEqual(await outcome(clientTlsOptions(undefined, ids.map.idOf('payments'), orders.pem.bundle)), 'hello');
    const foreign = await ids.issue(ids.map.idOf('orders'), { ca: await otherCa() });
    assert.notEqual(
      await outcome({
        ...clientTlsOptions(undefined, ids.map.idOf('payments'), orders.pem.bundle),
        cert: foreign.certPem,
        key: foreign.keyPem,
      }),
      'hello',
    );
    assert.equal(seen.length, before, 'the server handler never ran for a refused client');
  });

  it("refuses a client presenting a CA certificate from the bundle that carries a workload's SPIFFE ID (X509-SVID §4.1)", async () => {
    const signing = await ids.issueSigning(ids.map.idOf('orders'));
    const orders = parseSvid(readSvidFiles(ids.files('orders')), Date.now());
    // OpenSSL completes the handshake: the refusal is baton's, at the layer that turns a certificate into a service.
    assert.equal(
      await dial({
        ...clientTlsOptions(undefined, ids.map.idOf('payments'), orders.pem.bundle),
        cert: signing.certPem,
        key: signing.keyPem,
      }),
      'hello',
    );
    assert.equal(seen.at(-1), 'BATON_PEER_NOT_WORKLOAD', 'not orders');
  });

  it('refuses a server presenting a CA certificate that carries the expected SPIFFE ID, before sending anything', async () => {
    const signing = await ids.issueSigning(ids.map.idOf('payments'));
    const orders = parseSvid(readSvidFiles(ids.files('orders')), Date.now());
    const received: string[] = [];
    const impostor = createTlsServer(
      {
        cert: signing.certPem,
        key: signing.keyPem,
        ca: orders.pem.bundle,
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.3',
      },
      (socket) => {
        socket.on('data', (chunk: Buffer) => received.push(chunk.toString('utf8')));
        socket.end('hello');
      },
    );
    impostor.on('tlsClientError', () => {});
    impostor.listen(0, '127.0.0.1');
    await once(impostor, 'listening');
    const socket = connect({
      host: '127.0.0.1',
      port: (impostor.address() as { port: number }).port,
      ...clientTlsOptions(orders, ids.map.idOf('payments'), orders.pem.bundle),
    });
    try {
      const refused = await new Promise<unknown>((resolve) => {
        socket.once('secureConnect', () => {
          socket.write('a request with a token');
          resolve('connected');
        });
        socket.on('error', resolve);
      });
      assert.deepEqual(
        [(refused as { code?: string }).code, (refused as { reason?: string }).reason],
        ['BATON_UPSTREAM_IDENTITY_MISMATCH', 'ca-certificate'],
      );
      assert.match(
        String((refused as Error).message),
        /CA certificate naming spiffe:\/\/baton\.test\/ns\/test\/sa\/payments/,
      );
      assert.deepEqual(received, []);
    } finally {
      socket.destroy();
      impostor.close();
    }
  });
});
