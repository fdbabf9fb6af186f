import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import type { VerifiedToken } from '../../src/token/verified-token.ts';
import type { ServiceMap } from '../../src/identity/service-map.ts';
import { parseSpiffeId } from '../../src/identity/spiffe-id.ts';
import { parseSvid } from '../../src/identity/svid.ts';
import { clientTlsOptions, serverTlsOptions } from '../../src/identity/tls.ts';
import { readSvidFiles } from '../../src/identity/workload-identity.ts';
import { checkTokenBinding, type Listener, type Peer, peerOf } from '../../src/sidecar/edge-check.ts';
import {
  MeshTokenOnPlaintextError,
  PeerNotWorkloadError,
  PeerUnmappedError,
  TokenCallerMismatchError,
  TokenCertificateMismatchError,
  TokenCertificateRequiredError,
  TokenUnboundError,
} from '../../src/sidecar/errors.ts';
import { makeTestIdentities, type TestIdentities } from '../helpers/identities.ts';
import { verifiedMeshToken } from '../helpers/token.ts';

const THUMB_A = 'A'.repeat(43);
const THUMB_B = 'B'.repeat(43);
const meshToken = (overrides: Partial<VerifiedToken> = {}): VerifiedToken =>
  verifiedMeshToken({ confirmation: THUMB_A, ...overrides });
const externalToken = (overrides: Partial<VerifiedToken> = {}): VerifiedToken =>
  meshToken({ kind: 'external', chain: [], clientId: undefined, confirmation: undefined, ...overrides });
const gatewayPeer: Peer = { service: 'gateway', spiffeId: 'spiffe://t/ns/t/sa/gateway', thumbprint: THUMB_A };

function refusal(verified: VerifiedToken, peer: Peer | undefined, listener: Listener): string | undefined {
  try {
    checkTokenBinding(verified, peer, listener);
    return undefined;
  } catch (error) {
    assert.equal((error as { status?: number }).status === 401 || (error as { status?: number }).status === 403, true);
    return (error as { code: string }).code;
  }
}

describe('certificate-bound tokens at the inbound port (RFC 8705 §3)', () => {
  it('accepts a bound token on the connection that presents its certificate, from the caller it names', () => {
    assert.equal(refusal(meshToken(), gatewayPeer, 'mtls'), undefined);
  });

  it('refuses a bound token on a connection without a client certificate', () => {
    assert.equal(refusal(meshToken(), undefined, 'mtls'), TokenCertificateRequiredError.code);
    // Plaintext mode cannot check the binding, so it refuses bound tokens rather than ignore cnf.
    assert.equal(refusal(meshToken(), undefined, 'plaintext'), TokenCertificateRequiredError.code);
  });

  it('refuses a bound token presented with another certificate', () => {
    assert.equal(
      refusal(meshToken(), { ...gatewayPeer, thumbprint: THUMB_B }, 'mtls'),
      TokenCertificateMismatchError.code,
    );
  });

  it('refuses a token whose caller is not the connected workload', () => {
    assert.equal(refusal(meshToken(), { ...gatewayPeer, service: 'payments' }, 'mtls'), TokenCallerMismatchError.code);
    // client_id and the outermost act must both name the peer.
    assert.equal(
      refusal(meshToken({ chain: ['gateway'], clientId: 'orders' }), gatewayPeer, 'mtls'),
      TokenCallerMismatchError.code,
    );
    assert.equal(
      refusal(meshToken({ chain: ['gateway', 'orders'], clientId: 'gateway' }), gatewayPeer, 'mtls'),
      TokenCallerMismatchError.code,
    );
  });

  it('refuses an unbound mesh token in mtls mode, and accepts it in plaintext mode', () => {
    assert.equal(refusal(meshToken({ confirmation: undefined }), gatewayPeer, 'mtls'), TokenUnboundError.code);
    assert.equal(refusal(meshToken({ confirmation: undefined }), undefined, 'plaintext'), undefined);
  });

  it('takes external tokens only on the plaintext entrypoint port, never mesh tokens', () => {
    assert.equal(refusal(externalToken(), undefined, 'plaintext-entry'), undefined);
    assert.equal(refusal(meshToken(), undefined, 'plaintext-entry'), MeshTokenOnPlaintextError.code);
    assert.equal(
      refusal(meshToken({ confirmation: undefined }), undefined, 'plaintext-entry'),
      MeshTokenOnPlaintextError.code,
    );
  });

  it('accepts an external token on the mTLS port with or without a client certificate', () => {
    assert.equal(refusal(externalToken(), undefined, 'mtls'), undefined);
    assert.equal(refusal(externalToken(), gatewayPeer, 'mtls'), undefined);
    // An external token bound by its IdP is held to the same rule.
    assert.equal(
      refusal(externalToken({ confirmation: THUMB_B }), gatewayPeer, 'mtls'),
      TokenCertificateMismatchError.code,
    );
  });
});

describe('the TLS peer of an inbound request (peerOf), over real mTLS', () => {
  let ids: TestIdentities;
  let server: ReturnType<typeof createTlsServer>;
  let port: number;
  const outcomes: string[] = [];
  /**
   * Per connection: whether a second request on it got the first one's
   * answer, and how often a request with another map consulted that map, on
   * its first and its second request.
   */
  const repeats: Array<{ same: boolean; otherMapLookups: [number, number] }> = [];
  before(async () => {
    ids = await makeTestIdentities(['orders', 'gateway']);
    // The inbound port's settings, client certificate required: the sidecar's own SVID and the bundle.
    server = createTlsServer(
      serverTlsOptions(parseSvid(readSvidFiles(ids.files('orders')), Date.now()), 'required'),
      (socket: TLSSocket) => {
        const ask = (map: ServiceMap): string => {
          try {
            return peerOf(socket, map)?.service ?? 'none';
          } catch (error) {
            return (error as { code: string }).code;
          }
        };
        const first = ask(ids.map);
        outcomes.push(first);
        // A second request on the same keep-alive connection.
        let lookups = 0;
        const counting: ServiceMap = { ...ids.map, serviceOf: (id) => (lookups++, ids.map.serviceOf(id)) };
        const again = ask(ids.map);
        ask(counting);
        const firstLookups = lookups;
        ask(counting);
        repeats.push({ same: again === first, otherMapLookups: [firstLookups, lookups - firstLookups] });
        socket.end();
      },
    );
    server.on('tlsClientError', () => {});
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as { port: number }).port;
  });
  after(() => {
    server.close();
    ids.cleanup();
  });

  const dial = (cert: string, key: string): Promise<string | undefined> =>
    new Promise((resolve, reject) => {
      const before = outcomes.length;
      const socket = connect({
        host: '127.0.0.1',
        port,
        ...clientTlsOptions(undefined, ids.map.idOf('orders'), ids.ca.certPem),
        cert,
        key,
      });
      socket.on('error', reject);
      socket.on('close', () => resolve(outcomes.length > before ? outcomes.at(-1) : undefined));
      socket.resume();
    });

  it('maps a workload certificate to its service', async () => {
    const gateway = readSvidFiles(ids.files('gateway'));
    assert.equal(await dial(gateway.cert, gateway.key), 'gateway');
  });

  it('maps a connection once: a later request on it gets the same peer without the SPIFFE ID parsed again (#28)', async () => {
    const gateway = readSvidFiles(ids.files('gateway'));
    assert.equal(await dial(gateway.cert, gateway.key), 'gateway');
    // Another map is consulted afresh once, then its answer is kept too.
    assert.deepEqual(repeats.at(-1), { same: true, otherMapLookups: [1, 0] });
  });

  it('refuses a certificate from the bundle whose SPIFFE ID maps to no service, on every request of its connection', async () => {
    const stranger = await ids.issue(parseSpiffeId('spiffe://baton.test/not/a/service/path').id);
    assert.equal(await dial(stranger.certPem, stranger.keyPem), PeerUnmappedError.code);
    // A refusal is not cached: each request asks the map again.
    assert.deepEqual(repeats.at(-1), { same: true, otherMapLookups: [1, 1] });
  });

  it("refuses a CA certificate from the bundle that carries a workload's SPIFFE ID: a signing certificate is no workload (X509-SVID §4.1)", async () => {
    const signing = await ids.issueSigning(ids.map.idOf('gateway'));
    const code = await dial(signing.certPem, signing.keyPem);
    assert.equal(code, PeerNotWorkloadError.code);
    assert.equal(new PeerNotWorkloadError('x').status, 403);
  });
});
