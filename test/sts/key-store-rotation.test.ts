import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { decodeProtectedHeader } from 'jose';
import { ConfigError } from '../../src/config/config-error.ts';
import { createFilePolicySource } from '../../src/policy/distribution/source.ts';
import { checkStsConfig, type StsConfig } from '../../src/sts/config.ts';
import { createKeyStore, type KeyStore } from '../../src/sts/key-store.ts';
import { createStsServer } from '../../src/sts/server.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { createRemoteKeySource } from '../../src/token/key-source.ts';
import { createAccessTokenVerifier } from '../../src/token/verifier.ts';
import { freePort } from '../helpers/net.ts';
import { baseConfig, basic, FIXTURE_POLICY, SECRETS, writeStsConfig } from '../helpers/sts.ts';
import { TokenUnknownKidError } from '../../src/token/errors.ts';

const logger = createLogger({ name: 'test', level: 'silent' });
const PREPUBLISH = 360;
const HOUR_MS = 3_600_000;

interface RunningSts {
  readonly issuer: string;
  readonly keys: KeyStore;
  /** GET /jwks requests the server has answered. */
  jwksFetches(): number;
  clientCredentialsToken(): Promise<string>;
}

/** The real STS app on a loopback socket, on a clock the test moves. */
async function startSts(t: TestContext, clock: () => number): Promise<RunningSts> {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const configFile = writeStsConfig(baseConfig({ issuer, extra: { host: '127.0.0.1', port } }));
  t.after(() => configFile.remove());
  const policy = createFilePolicySource(FIXTURE_POLICY, { logger, watch: false });
  await policy.start();
  const keys = await createKeyStore({
    alg: 'ES256',
    retireAfterSeconds: 330,
    prepublishSeconds: PREPUBLISH,
    logger,
    now: clock,
  });
  const server = createStsServer(configFile.config, { logger, policy, keys, now: clock });
  let fetches = 0;
  server.app.addHook('onRequest', (request, _reply, done) => {
    if (request.url === '/jwks') fetches += 1;
    done();
  });
  await server.listen();
  t.after(async () => {
    await server.close();
    await policy.close();
    keys.close();
  });
  return {
    issuer,
    keys,
    jwksFetches: () => fetches,
    async clientCredentialsToken() {
      const response = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: basic('billing-job', SECRETS['billing-job']),
        },
        body: new URLSearchParams({ grant_type: 'client_credentials', audience: 'orders' }).toString(),
      });
      assert.equal(response.status, 200);
      return ((await response.json()) as { access_token: string }).access_token;
    },
  };
}

/** A sidecar's view of the STS keys: periodic refresh and unknown-kid refetch both an hour apart. */
function sidecarVerifier(t: TestContext, sts: RunningSts, clock: () => number) {
  const keys = createRemoteKeySource({
    issuer: sts.issuer,
    jwksUri: `${sts.issuer}/jwks`,
    cooldownMs: HOUR_MS,
    refreshIntervalMs: HOUR_MS,
    now: clock,
  });
  t.after(() => keys.close());
  const verifier = createAccessTokenVerifier({
    issuers: [{ issuer: sts.issuer, keys, kind: 'mesh' }],
    maxActDepth: 8,
    now: clock,
  });
  return { keys, verify: (token: string) => verifier.verify(token, { audience: 'orders' }) };
}

describe('STS key rotation seen by a verifier', () => {
  it('a verifier that fetched the JWKS after rotate() accepts the first token signed with the new key without refetching', async (t) => {
    let now = Date.now();
    const clock = () => now;
    const sts = await startSts(t, clock);
    const sidecar = sidecarVerifier(t, sts, clock);
    await sidecar.keys.refresh();
    const old = sts.keys.active();
    assert.equal((await sidecar.verify(await sts.clientCredentialsToken())).subject, 'billing-job');

    const standby = await sts.keys.rotate();
    assert.equal(
      decodeProtectedHeader(await sts.clientCredentialsToken()).kid,
      old.kid,
      'the standby does not sign yet',
    );
    // The sidecar's periodic refresh, somewhere inside the pre-publication window.
    now += (PREPUBLISH / 2) * 1000;
    await sidecar.keys.refresh();
    const fetchesBeforeActivation = sts.jwksFetches();

    now += (PREPUBLISH / 2) * 1000;
    const first = await sts.clientCredentialsToken();
    assert.equal(decodeProtectedHeader(first).kid, standby.kid);
    assert.equal((await sidecar.verify(first)).subject, 'billing-job');
    assert.equal(sts.jwksFetches(), fetchesBeforeActivation, 'no refetch for the new kid');
  });

  it('a verifier whose last fetch predates rotate() would refuse the new kid within its cooldown: the gap pre-publication closes', async (t) => {
    let now = Date.now();
    const clock = () => now;
    const sts = await startSts(t, clock);
    const stale = sidecarVerifier(t, sts, clock);
    await stale.keys.refresh();
    await sts.keys.rotate();
    now += PREPUBLISH * 1000;
    await assert.rejects(stale.verify(await sts.clientCredentialsToken()), { code: TokenUnknownKidError.code });
  });

  it('serves /jwks with a max-age shorter than prepublishSeconds', async (t) => {
    const sts = await startSts(t, Date.now);
    const response = await fetch(`${sts.issuer}/jwks`);
    assert.equal(response.status, 200);
    const maxAge = Number(/max-age=(\d+)/.exec(response.headers.get('cache-control') ?? '')?.[1]);
    assert.ok(maxAge > 0 && maxAge < PREPUBLISH, `max-age ${maxAge}`);
    await response.body?.cancel();
  });
});

describe('keys.prepublishSeconds config', () => {
  const withKeys = (keys: Record<string, unknown>): StsConfig => {
    const file = writeStsConfig(baseConfig({ issuer: 'http://sts.test', extra: { keys } }));
    file.remove();
    return file.config;
  };
  const check = (keys: StsConfig['keys']) => () => checkStsConfig({ ...withKeys({}), keys }, 'test');

  it('loads a pre-publication time shorter than the rotation period', () => {
    assert.equal(withKeys({ rotateEverySeconds: 3600, prepublishSeconds: 600 }).keys?.prepublishSeconds, 600);
  });

  it('refuses a prepublishSeconds not shorter than rotateEverySeconds, defaults included', () => {
    const refused = (error: unknown) =>
      error instanceof ConfigError && error.code === 'BATON_CONFIG_INVALID' && error.key === 'keys.prepublishSeconds';
    assert.throws(check({ rotateEverySeconds: 600, prepublishSeconds: 600 }), refused);
    assert.throws(check({ rotateEverySeconds: 300 }), refused);
  });
});
