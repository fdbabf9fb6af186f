import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/config/config-error.ts';
import { DEFAULT_PREPUBLISH_SECONDS } from '../../src/sts/config.ts';
import { baseConfig, writeStsConfig } from '../helpers/sts.ts';

const refuses = (raw: Record<string, unknown>, key: RegExp, reason?: string) =>
  assert.throws(
    () => writeStsConfig(raw),
    (error: unknown) =>
      error instanceof ConfigError &&
      key.test(error.key) &&
      error.code === 'BATON_CONFIG_INVALID' &&
      (reason === undefined || error.reason === reason),
  );

describe('sts config', () => {
  it('applies the defaults the docs promise', (t) => {
    const file = writeStsConfig(baseConfig({ issuer: 'http://127.0.0.1:7000' }));
    t.after(() => file.remove());
    assert.equal(file.config.host, '127.0.0.1');
    assert.equal(file.config.port, 7000);
    assert.equal(file.config.signingAlg, 'ES256');
    assert.equal(file.config.tokenTtlSeconds, 300);
    assert.ok(Object.isFrozen(file.config.clients));
  });

  it('refuses a client without a credential, or with two kinds of secret', () => {
    refuses({ ...baseConfig({ issuer: 'http://sts' }), clients: [{ id: 'a' }] }, /^clients\.0$/);
    refuses(
      {
        ...baseConfig({ issuer: 'http://sts' }),
        clients: [{ id: 'a', secret: 'aaaaaaaaaaaaaaaaaaaa', secretHash: 'scrypt$1' }],
      },
      /^clients\.0$/,
    );
  });

  it('refuses a short secret without echoing it', () => {
    assert.throws(
      () => writeStsConfig({ ...baseConfig({ issuer: 'http://sts' }), clients: [{ id: 'a', secret: 'short-one' }] }),
      (error: unknown) => error instanceof ConfigError && !error.message.includes('short-one'),
    );
  });

  it('refuses both or neither of policy.file and policy.url', () => {
    refuses({ ...baseConfig({ issuer: 'http://sts' }), policy: {} }, /^policy$/);
  });

  it('refuses an external issuer with no way to find its keys', () => {
    refuses(
      { ...baseConfig({ issuer: 'http://sts' }), externalIssuers: [{ issuer: 'https://idp' }] },
      /^externalIssuers\.0$/,
    );
  });

  it('defaults an external issuer to the strict rfc9068 profile, and takes a preset with overrides', (t) => {
    const file = writeStsConfig({
      ...baseConfig({ issuer: 'http://sts' }),
      externalIssuers: [
        { issuer: 'https://idp', jwksUri: 'https://idp/jwks' },
        {
          issuer: 'https://kc/realms/shop',
          discovery: true,
          profile: 'keycloak',
          roleScopes: { rule: 'keycloak-realm-roles', map: { clerk: ['orders:read'] } },
        },
      ],
    });
    t.after(() => file.remove());
    assert.equal(file.config.externalIssuers[0]?.profile, 'rfc9068');
    assert.equal(file.config.externalIssuers[1]?.profile, 'keycloak');
  });

  it('refuses an unknown preset, an unknown service rule, and a typ that is not a media type', () => {
    const base = baseConfig({ issuer: 'http://sts' });
    refuses(
      { ...base, externalIssuers: [{ issuer: 'https://idp', discovery: true, profile: 'ping' }] },
      /^externalIssuers/,
    );
    refuses(
      { ...base, externalIssuers: [{ issuer: 'https://idp', discovery: true, serviceWhen: ['always'] }] },
      /^externalIssuers/,
    );
    refuses(
      { ...base, externalIssuers: [{ issuer: 'https://idp', discovery: true, typ: ['at+jwt', 'no way'] }] },
      /^externalIssuers\.0\.typ$/,
    );
  });

  it('refuses two introspecting issuers without distinct, non-overlapping token prefixes: an opaque token names none, and the wrong one would see it', () => {
    const introspection = (tokenPrefix?: string) => ({
      clientId: 'baton',
      clientSecret: 'introspection-secret',
      ...(tokenPrefix === undefined ? {} : { tokenPrefix }),
    });
    const withIssuers = (a?: string, b?: string) => ({
      ...baseConfig({ issuer: 'http://sts' }),
      externalIssuers: [
        { issuer: 'https://a', introspection: introspection(a) },
        { issuer: 'https://b', introspection: introspection(b) },
      ],
    });
    refuses(withIssuers(), /^externalIssuers\.0\.introspection\.tokenPrefix$/);
    refuses(withIssuers('op_'), /^externalIssuers\.1\.introspection\.tokenPrefix$/);
    refuses(withIssuers('op_', 'op_'), /^externalIssuers\.1\.introspection\.tokenPrefix$/);
    refuses(withIssuers('op_', 'op_at_'), /^externalIssuers\.1\.introspection\.tokenPrefix$/);
  });

  it('takes two introspecting issuers with distinct token prefixes', (t) => {
    const file = writeStsConfig({
      ...baseConfig({ issuer: 'http://sts' }),
      externalIssuers: [
        {
          issuer: 'https://a',
          introspection: { clientId: 'baton', clientSecret: 'introspection-secret', tokenPrefix: 'a_' },
        },
        {
          issuer: 'https://b',
          introspection: { clientId: 'baton', clientSecret: 'introspection-secret', tokenPrefix: 'b_' },
        },
      ],
    });
    t.after(() => file.remove());
    assert.deepEqual(
      file.config.externalIssuers.map((e) => e.introspection?.tokenPrefix),
      ['a_', 'b_'],
    );
  });

  it('takes an issuer known by introspection alone, and never echoes its client secret', (t) => {
    const file = writeStsConfig({
      ...baseConfig({ issuer: 'http://sts' }),
      externalIssuers: [
        { issuer: 'https://op', introspection: { clientId: 'baton', clientSecret: 'introspection-secret' } },
      ],
    });
    t.after(() => file.remove());
    assert.equal(file.config.externalIssuers[0]?.introspection?.maxCacheSeconds, 300);
    assert.throws(
      () =>
        writeStsConfig({
          ...baseConfig({ issuer: 'http://sts' }),
          externalIssuers: [
            {
              issuer: 'https://op',
              introspection: { clientId: 'baton', clientSecret: 'do-not-print-me', authMethod: 'private_key_jwt' },
            },
          ],
        }),
      (error: unknown) =>
        error instanceof ConfigError && /introspection/.test(error.key) && !error.message.includes('do-not-print-me'),
    );
  });
});

describe('sts transport configuration', () => {
  const mtls = (extra: Record<string, unknown>) => ({
    ...baseConfig({ issuer: 'https://sts:7000' }),
    transport: { mode: 'mtls' },
    ...extra,
  });
  it('takes tls_client_auth as a client credential in mtls mode, and refuses it in plaintext mode', () => {
    const file = writeStsConfig(
      mtls({
        clients: [
          { id: 'orders', tlsClientAuth: true },
          { id: 'legacy', tlsClientAuthSanUri: 'spiffe://cluster.local/legacy/x' },
        ],
      }),
    );
    file.remove();
    refuses(
      { ...baseConfig({ issuer: 'http://sts' }), clients: [{ id: 'orders', tlsClientAuth: true }] },
      /^clients\.0$/,
    );
  });

  it('refuses an http:// issuer or policy URL in mtls mode', () => {
    refuses(mtls({ issuer: 'http://sts:7000' }), /^issuer$/);
    refuses(mtls({ policy: { url: 'http://policy:7300', publicKey: 'k.pem' } }), /^policy\.url$/);
  });
});

describe('sts tunables', () => {
  it('applies the documented defaults for chain depth, clock skew, issuer keys and key prepublication', (t) => {
    const file = writeStsConfig(baseConfig({ issuer: 'http://127.0.0.1:7000' }));
    t.after(() => file.remove());
    assert.equal(file.config.maxChainDepth, 64);
    assert.equal(file.config.clockToleranceSeconds, 30);
    assert.equal(file.config.policy.readyTimeoutMs, 10_000);
    assert.equal(file.config.policy.waitSeconds, 30, 'the same policy block as the sidecar');
    assert.deepEqual(file.config.jwks, {
      refreshIntervalMs: 300_000,
      cooldownMs: 30_000,
      maxStaleMs: 86_400_000,
      timeoutMs: 2_000,
    });
    // A new key waits in /jwks for one verifier refresh plus the /jwks max-age.
    assert.equal(DEFAULT_PREPUBLISH_SECONDS, file.config.jwks.refreshIntervalMs / 1000 + 60);
  });

  it('refuses a bad value, naming its key', () => {
    const base = baseConfig({ issuer: 'http://sts' });
    refuses({ ...base, maxChainDepth: 65 }, /^maxChainDepth$/);
    refuses({ ...base, jwks: { cooldownMs: -1 } }, /^jwks\.cooldownMs$/);
    refuses({ ...base, port: 65_536 }, /^port$/);
    refuses({ ...base, logLevel: 'verbose' }, /^logLevel$/);
    refuses({ ...base, jwks: { coolDownMs: 1 } }, /^jwks\.coolDownMs$/, 'unknown-key');
  });

  it('refuses at load issuer keys that would be stale before the next refresh', () => {
    refuses(
      { ...baseConfig({ issuer: 'http://sts' }), jwks: { refreshIntervalMs: 600_000, maxStaleMs: 300_000 } },
      /^jwks\.maxStaleMs$/,
    );
  });
});
