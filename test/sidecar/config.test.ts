import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/config/config-error.ts';
import { loadSidecarConfig, stsAuthMethod } from '../../src/sidecar/config.ts';
import { StsConfigSchema } from '../../src/sts/config.ts';
import { KEY_SOURCE_DEFAULTS } from '../../src/token/config.ts';
import { introspectorOf } from '../../src/token/issuer-profile-config.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';

const base = (overrides: Record<string, unknown>) =>
  loadSidecarConfig({
    overrides: {
      service: 'orders',
      'policy.file': 'x.yaml',
      'sts.clientId': 'orders',
      'sts.issuer': 'https://sts:7000',
      ...overrides,
    },
  });
const refuses = (overrides: Record<string, unknown>, key: RegExp, reason?: string) =>
  assert.throws(
    () => base(overrides),
    (error: unknown) =>
      error instanceof ConfigError &&
      key.test(error.key) &&
      error.code === 'BATON_CONFIG_INVALID' &&
      (reason === undefined || error.reason === reason),
  );

describe('sidecar transport configuration', () => {
  it('defaults to mtls, tls_client_auth and required client certificates, with no secret needed', () => {
    const config = base({});
    assert.equal(config.transport.mode, 'mtls');
    assert.equal(config.inbound.clientCertificate, 'required');
    assert.equal(stsAuthMethod(config), 'tls_client_auth');
  });

  it('refuses plain http:// mesh URLs in mtls mode', () => {
    refuses({ 'sts.issuer': 'http://sts:7000' }, /^sts\.issuer$/);
    refuses(
      { 'policy.url': 'http://policy:7300', 'policy.publicKey': '/etc/baton/policy.pub.pem', 'policy.file': undefined },
      /^policy\.url$/,
    );
    refuses({ upstreams: { payments: 'http://payments:7070' } }, /^upstreams\.payments$/);
  });

  it('asks for a secret with the secret methods, and refuses tls_client_auth and a second plaintext port in plaintext mode', () => {
    refuses({ 'sts.authMethod': 'client_secret_basic' }, /^sts\.clientSecret$/);
    refuses({ 'transport.mode': 'plaintext', 'sts.issuer': 'http://sts:7000' }, /^sts\.clientSecret$/);
    refuses(
      { 'transport.mode': 'plaintext', 'sts.issuer': 'http://sts:7000', 'sts.authMethod': 'tls_client_auth' },
      /^sts\.authMethod$/,
    );
    refuses(
      {
        'transport.mode': 'plaintext',
        'sts.issuer': 'http://sts:7000',
        'sts.clientSecret': 's',
        'inbound.plaintextPort': 8081,
      },
      /^inbound\.plaintextPort$/,
    );
    assert.equal(
      stsAuthMethod(base({ 'transport.mode': 'plaintext', 'sts.issuer': 'http://sts:7000', 'sts.clientSecret': 's' })),
      'client_secret_basic',
    );
  });
});

describe('sidecar tunables', () => {
  it('applies the documented defaults for the exchanger, the breaker, issuer keys, clock skew and chain depth', () => {
    const config = base({});
    assert.deepEqual(config.exchange, {
      expiryMarginSeconds: 30,
      refreshAheadSeconds: 60,
      refusalCacheMs: 5_000,
      connectTimeoutMs: 1_000,
      timeoutMs: 2_000,
      breaker: { failureThreshold: 5, openMs: 1_000, maxOpenMs: 30_000 },
    });
    assert.deepEqual(config.jwks, {
      refreshIntervalMs: 300_000,
      cooldownMs: 30_000,
      maxStaleMs: 86_400_000,
      timeoutMs: 2_000,
    });
    assert.equal(config.limits.clockToleranceSeconds, 30);
    assert.equal(config.connectTimeoutMs, 5_000);
    assert.equal(config.limits.maxTokenBytes, 8192);
    assert.deepEqual(
      {
        wait: config.policy.waitSeconds,
        min: config.policy.minBackoffMs,
        max: config.policy.maxBackoffMs,
        age: config.policy.maxAgeSeconds,
      },
      { wait: 30, min: 500, max: 30_000, age: 86_400 },
    );
    // The key sources' fallbacks are the same constants the schema defaults to.
    assert.deepEqual(config.jwks, KEY_SOURCE_DEFAULTS);
  });

  it('has one chain-depth default with the STS: the policy language ceiling', () => {
    assert.equal(base({}).limits.maxActDepth, 64);
    assert.equal(StsConfigSchema.properties.maxChainDepth.default, 64);
  });

  it('takes a tunable from the environment', () => {
    const config = loadSidecarConfig({
      env: { BATON_EXCHANGE__BREAKER__OPEN_MS: '2500', BATON_JWKS__COOLDOWN_MS: '0' },
      overrides: {
        service: 'orders',
        'policy.file': 'x.yaml',
        'sts.clientId': 'orders',
        'sts.issuer': 'https://sts:7000',
      },
    });
    assert.equal(config.exchange.breaker.openMs, 2500);
    assert.equal(config.jwks.cooldownMs, 0);
  });

  it('refuses a bad value, naming its key', () => {
    refuses({ 'exchange.breaker.failureThreshold': 0 }, /^exchange\.breaker\.failureThreshold$/);
    refuses({ 'exchange.expiryMarginSeconds': -1 }, /^exchange\.expiryMarginSeconds$/);
    refuses({ 'exchange.refusalCacheMs': 1.5 }, /^exchange\.refusalCacheMs$/);
    refuses({ 'jwks.maxStaleMs': 10 }, /^jwks\.maxStaleMs$/);
    refuses({ 'limits.maxActDepth': 65 }, /^limits\.maxActDepth$/);
    refuses({ 'limits.clockToleranceSeconds': 301 }, /^limits\.clockToleranceSeconds$/);
    refuses({ 'policy.waitSeconds': 61 }, /^policy\.waitSeconds$/);
    refuses({ 'exchange.breaker.openMS': 10 }, /^exchange\.breaker\.openMS$/, 'unknown-key');
  });

  it('refuses the shared atoms the same way in every part: ports, log level, DNS-1123 names', () => {
    refuses({ 'inbound.port': 65_536 }, /^inbound\.port$/);
    refuses({ 'outbound.defaultUpstreamPort': 0 }, /^outbound\.defaultUpstreamPort$/);
    refuses({ logLevel: 'verbose' }, /^logLevel$/);
    refuses({ service: 'Orders' }, /^service$/);
    refuses({ 'spiffe.namespace': 'shop_eu' }, /^spiffe\.namespace$/);
    assert.equal(base({ 'inbound.port': 0 }).inbound.port, 0, '0 picks a free port to listen on');
  });
});

describe('sidecar cross-field checks run at load, not in wiring', () => {
  it('refuses a breaker whose longest open period is shorter than its first', () => {
    refuses(
      { 'exchange.breaker.openMs': 5_000, 'exchange.breaker.maxOpenMs': 1_000 },
      /^exchange\.breaker\.maxOpenMs$/,
    );
    assert.equal(
      base({ 'exchange.breaker.openMs': 5_000, 'exchange.breaker.maxOpenMs': 5_000 }).exchange.breaker.maxOpenMs,
      5_000,
    );
  });

  it('refuses issuer keys that would be stale before the next refresh', () => {
    refuses({ 'jwks.refreshIntervalMs': 60_000, 'jwks.maxStaleMs': 60_000 }, /^jwks\.maxStaleMs$/);
  });

  it('refuses no policy source, two policy sources, and a policy URL without its key', () => {
    refuses({ policy: {} }, /^policy$/);
    refuses({ 'policy.url': 'https://policy:7300', 'policy.publicKey': '/k.pem' }, /^policy$/);
    refuses({ 'policy.file': undefined, 'policy.url': 'https://policy:7300' }, /^policy\.publicKey$/);
  });

  it('refuses policy retry delays that cannot grow', () => {
    refuses({ 'policy.minBackoffMs': 2_000, 'policy.maxBackoffMs': 1_000 }, /^policy\.maxBackoffMs$/);
  });

  it('takes several introspecting issuers told apart by distinct token prefixes', () => {
    const introspection = (tokenPrefix: string) => ({ clientId: 'baton', clientSecret: 's', tokenPrefix });
    const config = base({
      externalIssuers: [
        { issuer: 'https://a.example', introspection: introspection('a_at_') },
        { issuer: 'https://b.example', introspection: introspection('b_at_') },
      ],
    });
    assert.deepEqual(
      config.externalIssuers.map((e) => e.introspection?.tokenPrefix),
      ['a_at_', 'b_at_'],
    );
  });

  it('refuses two introspecting issuers a token could reach both of: a prefix missing, the same, or the start of another', () => {
    const issuers = (a: string | undefined, b: string | undefined) => ({
      externalIssuers: [
        {
          issuer: 'https://a.example',
          introspection: { clientId: 'baton', clientSecret: 's', ...(a === undefined ? {} : { tokenPrefix: a }) },
        },
        {
          issuer: 'https://b.example',
          introspection: { clientId: 'baton', clientSecret: 's', ...(b === undefined ? {} : { tokenPrefix: b }) },
        },
      ],
    });
    refuses(issuers(undefined, undefined), /^externalIssuers\.0\.introspection\.tokenPrefix$/);
    for (const [a, b] of [
      ['a_at_', undefined],
      ['at_', 'at_'],
      ['at_', 'at_b_'],
      ['at_b_', 'at_'],
    ] as const) {
      refuses(issuers(a, b), /^externalIssuers\.1\.introspection\.tokenPrefix$/);
    }
    assert.throws(
      () => base(issuers('at_', 'at_b_')),
      (error: unknown) =>
        error instanceof ConfigError &&
        /expected a prefix distinct from every other issuer's.*, got "at_b_" and externalIssuers\.0\.introspection\.tokenPrefix "at_"$/.test(
          error.message,
        ),
    );
  });
});

describe('sidecar external issuers', () => {
  it('takes an introspection client secret from a file (a mounted Secret), and refuses both or neither', () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-introspection-secret-'));
    try {
      writeFileSync(join(dir, 'client-secret'), 'from-a-secret-file\n');
      const issuer = (introspection: Record<string, unknown>) => ({
        externalIssuers: [{ issuer: 'https://idp.example', introspection: { clientId: 'baton', ...introspection } }],
      });
      const config = base(issuer({ clientSecretFile: join(dir, 'client-secret') }));
      const introspector = introspectorOf(config.externalIssuers[0] as Parameters<typeof introspectorOf>[0], {
        logger: pino({ level: 'silent' }),
        now: Date.now,
      });
      assert.ok(introspector, 'an introspector is built from the file');
      refuses(issuer({}), /^externalIssuers\.0\.introspection$/);
      refuses(
        issuer({ clientSecret: 's', clientSecretFile: join(dir, 'client-secret') }),
        /^externalIssuers\.0\.introspection$/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
