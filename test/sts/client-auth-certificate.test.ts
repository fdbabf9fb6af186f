import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createServiceMap } from '../../src/identity/service-map.ts';
import type { PeerIdentity } from '../../src/identity/tls.ts';
import { type ClientPeer, createClientAuthenticator } from '../../src/sts/client-auth.ts';
import { createClientRegistry } from '../../src/sts/clients.ts';
import { parseTokenRequestForm } from '../../src/sts/form.ts';
import { createMemoryReplayStore } from '../../src/sts/replay-store.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { spiffeId } from '../../src/identity/spiffe-id.ts';
import { InvalidClientError } from '../../src/sts/errors.ts';

const map = createServiceMap({
  trustDomain: 'baton.test',
  namespace: 'test',
  template: '/ns/{namespace}/sa/{service}',
  ids: {},
});
const SECRET = 'a-secret-of-sixteen-plus';
const registry = createClientRegistry(
  [
    { id: 'orders', tlsClientAuth: true },
    { id: 'payments', tlsClientAuth: true },
    { id: 'legacy', tlsClientAuthSanUri: 'spiffe://baton.test/legacy/ledger' },
    { id: 'checkout', secret: SECRET },
  ],
  { logger: createLogger({ name: 't', level: 'silent' }), map },
);
const authenticator = createClientAuthenticator({
  registry,
  issuer: 'https://sts',
  tokenEndpoint: 'https://sts/token',
  replay: createMemoryReplayStore(),
  clockToleranceSec: 30,
  now: Date.now,
});
const peer = (id: string): ClientPeer => ({
  address: '127.0.0.1',
  certificate: { spiffeId: spiffeId(id), thumbprint: `thumb-of-${id}` } satisfies PeerIdentity,
});
const form = (fields: Record<string, string>) =>
  parseTokenRequestForm(new URLSearchParams({ grant_type: 'client_credentials', ...fields }).toString());
const code = async (promise: Promise<unknown>) =>
  promise.then(
    () => 'ok',
    (error: { code?: string }) => error.code,
  );

describe('tls_client_auth and certificates at the token endpoint (RFC 8705 §2)', () => {
  it('authenticates a client by the SAN URI of its certificate and binds to that certificate', async () => {
    const client = await authenticator.authenticate(undefined, form({ client_id: 'orders' }), peer(map.idOf('orders')));
    assert.equal(client.client.id, 'orders');
    assert.equal(client.method, 'tls_client_auth');
    assert.equal(client.certificateThumbprint, `thumb-of-${map.idOf('orders')}`);
    const legacy = await authenticator.authenticate(
      undefined,
      form({ client_id: 'legacy' }),
      peer('spiffe://baton.test/legacy/ledger'),
    );
    assert.equal(legacy.client.id, 'legacy');
  });

  it('refuses a certificate whose SPIFFE ID maps to another client', async () => {
    assert.equal(
      await code(authenticator.authenticate(undefined, form({ client_id: 'payments' }), peer(map.idOf('orders')))),
      InvalidClientError.code,
    );
  });

  it('requires client_id with a certificate, and a client registered for tls_client_auth', async () => {
    assert.equal(
      await code(authenticator.authenticate(undefined, form({}), peer(map.idOf('orders')))),
      InvalidClientError.code,
    );
    assert.equal(
      await code(authenticator.authenticate(undefined, form({ client_id: 'checkout' }), peer(map.idOf('checkout')))),
      InvalidClientError.code,
    );
    assert.equal(
      await code(authenticator.authenticate(undefined, form({ client_id: 'orders' }))),
      InvalidClientError.code,
    );
  });

  it("refuses a secret client whose connection presents another workload's certificate, and binds to its own", async () => {
    assert.equal(
      await code(
        authenticator.authenticate(
          undefined,
          form({ client_id: 'checkout', client_secret: SECRET }),
          peer(map.idOf('orders')),
        ),
      ),
      InvalidClientError.code,
    );
    const own = await authenticator.authenticate(
      undefined,
      form({ client_id: 'checkout', client_secret: SECRET }),
      peer(map.idOf('checkout')),
    );
    assert.equal(own.method, 'client_secret_post');
    assert.equal(own.certificateThumbprint, `thumb-of-${map.idOf('checkout')}`);
    const without = await authenticator.authenticate(undefined, form({ client_id: 'checkout', client_secret: SECRET }));
    assert.equal(without.certificateThumbprint, undefined);
  });
});
