import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/config/config-error.ts';
import { loadSidecarConfig, stsAuthMethod } from '../../src/sidecar/config.ts';

const base = (overrides: Record<string, unknown>) => loadSidecarConfig({ overrides: { service: 'orders', 'policy.file': 'x.yaml', 'sts.clientId': 'orders', 'sts.issuer': 'https://sts:7000', ...overrides } });
const refuses = (overrides: Record<string, unknown>, key: RegExp) => assert.throws(() => base(overrides), (error: unknown) => error instanceof ConfigError && key.test(error.key));

describe('sidecar transport configuration', () => {
  it('defaults to mtls, tls_client_auth and required client certificates, with no secret needed', () => {
    const config = base({});
    assert.equal(config.transport.mode, 'mtls');
    assert.equal(config.inbound.clientCertificate, 'required');
    assert.equal(stsAuthMethod(config), 'tls_client_auth');
  });

  it('refuses plain http:// mesh URLs in mtls mode', () => {
    refuses({ 'sts.issuer': 'http://sts:7000' }, /^sts\.issuer$/);
    refuses({ 'policy.url': 'http://policy:7300', 'policy.file': undefined }, /^policy\.url$/);
    refuses({ upstreams: { payments: 'http://payments:7070' } }, /^upstreams\.payments$/);
  });

  it('asks for a secret with the secret methods, and refuses tls_client_auth and a second plaintext port in plaintext mode', () => {
    refuses({ 'sts.authMethod': 'client_secret_basic' }, /^sts\.clientSecret$/);
    refuses({ 'transport.mode': 'plaintext', 'sts.issuer': 'http://sts:7000' }, /^sts\.clientSecret$/);
    refuses({ 'transport.mode': 'plaintext', 'sts.issuer': 'http://sts:7000', 'sts.authMethod': 'tls_client_auth' }, /^sts\.authMethod$/);
    refuses({ 'transport.mode': 'plaintext', 'sts.issuer': 'http://sts:7000', 'sts.clientSecret': 's', 'inbound.plaintextPort': 8081 }, /^inbound\.plaintextPort$/);
    assert.equal(stsAuthMethod(base({ 'transport.mode': 'plaintext', 'sts.issuer': 'http://sts:7000', 'sts.clientSecret': 's' })), 'client_secret_basic');
  });
});
