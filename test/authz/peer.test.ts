import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { peerOfProxy, peerOfXfcc } from '../../src/authz/peer.ts';
import { certificateThumbprint } from '../../src/identity/svid.ts';
import { makeTestIdentities, type TestIdentities } from '../helpers/identities.ts';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code;
  }
}

describe('the peer a proxy describes (baton authz)', () => {
  let ids: TestIdentities;
  let gatewayPem: string;
  let thumbprint: string;

  before(async () => {
    ids = await makeTestIdentities(['gateway', 'orders']);
    gatewayPem = readFileSync(ids.files('gateway').certFile, 'utf8');
    thumbprint = certificateThumbprint(new X509Certificate(gatewayPem));
  });
  after(() => ids.cleanup());

  it('takes the SPIFFE ID and thumbprint from the certificate (URL-encoded PEM, as Envoy and nginx send it)', () => {
    const peer = peerOfProxy(
      { principal: ids.map.idOf('gateway'), certificate: encodeURIComponent(gatewayPem) },
      ids.map,
    );
    assert.deepEqual(peer, { service: 'gateway', spiffeId: ids.map.idOf('gateway'), thumbprint });
  });

  it('maps a principal alone to its service, with no thumbprint to hold a token to', () => {
    assert.deepEqual(peerOfProxy({ principal: ids.map.idOf('orders') }, ids.map), {
      service: 'orders',
      spiffeId: ids.map.idOf('orders'),
      thumbprint: undefined,
    });
  });

  it("describes no peer when the proxy names none (empty strings are Envoy's unset fields)", () => {
    assert.equal(peerOfProxy({ principal: '', certificate: '' }, ids.map), undefined);
    assert.equal(peerOfProxy(undefined, ids.map), undefined);
  });

  it('refuses a principal that maps to no service, a CA certificate, and a certificate that contradicts the principal', async () => {
    assert.equal(
      code(() => peerOfProxy({ principal: 'spiffe://other.example/ns/test/sa/gateway' }, ids.map)),
      'BATON_PEER_UNMAPPED',
    );
    assert.equal(
      code(() => peerOfProxy({ principal: 'CN=gateway' }, ids.map)),
      'BATON_PEER_UNMAPPED',
    );
    const signing = await ids.issueSigning(ids.map.idOf('gateway'));
    assert.equal(
      code(() => peerOfProxy({ certificate: encodeURIComponent(signing.certPem) }, ids.map)),
      'BATON_PEER_NOT_WORKLOAD',
    );
    assert.equal(
      code(() =>
        peerOfProxy({ principal: ids.map.idOf('orders'), certificate: encodeURIComponent(gatewayPem) }, ids.map),
      ),
      'BATON_AUTHZ_MALFORMED_CHECK',
    );
    assert.equal(
      code(() => peerOfProxy({ certificate: 'not%a%pem' }, ids.map)),
      'BATON_AUTHZ_MALFORMED_CHECK',
    );
  });

  it('reads the last element of x-forwarded-client-cert: the one the proxy in front of baton wrote', () => {
    const hash = Buffer.from(thumbprint, 'base64url').toString('hex');
    const forged = `URI=${ids.map.idOf('orders')};Hash=${'0'.repeat(64)}`;
    const own = `By=spiffe://baton.test/ns/test/sa/orders;Hash=${hash};Cert="${encodeURIComponent(gatewayPem)}";Subject="CN=a, O=b";URI=${ids.map.idOf('gateway')}`;
    const described = peerOfXfcc(`${forged},${own}`);
    assert.equal(described?.principal, ids.map.idOf('gateway'));
    assert.equal(described?.certificateHash, hash);
    assert.deepEqual(peerOfProxy(described, ids.map), {
      service: 'gateway',
      spiffeId: ids.map.idOf('gateway'),
      thumbprint,
    });
    // nginx: Cert="$ssl_client_escaped_cert", empty without a client certificate.
    assert.equal(peerOfProxy(peerOfXfcc('Cert=""'), ids.map), undefined);
    assert.equal(peerOfXfcc(undefined), undefined);
  });

  it("refuses an x-forwarded-client-cert that could be read two ways, or whose hash is not its certificate's", () => {
    assert.equal(
      code(() => peerOfXfcc('URI="spiffe://a;Hash=b')),
      'BATON_AUTHZ_MALFORMED_CHECK',
    );
    assert.equal(
      code(() => peerOfXfcc(`URI=${ids.map.idOf('gateway')};URI=${ids.map.idOf('orders')}`)),
      'BATON_AUTHZ_MALFORMED_CHECK',
    );
    assert.equal(
      code(() => peerOfProxy(peerOfXfcc(`Hash=${'ab'.repeat(32)};Cert="${encodeURIComponent(gatewayPem)}"`), ids.map)),
      'BATON_AUTHZ_MALFORMED_CHECK',
    );
    assert.equal(
      code(() => peerOfProxy(peerOfXfcc(`Hash=${'ab'.repeat(32)}`), ids.map)),
      'BATON_AUTHZ_MALFORMED_CHECK',
    );
  });
});
