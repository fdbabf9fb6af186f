import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { JWT_BEARER_ASSERTION_TYPE } from '../../src/core/token-types.ts';
import { loadStsConfig, type StsConfig } from '../../src/sts/config.ts';

type SigningPrivateKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

export const FIXTURE_POLICY = fileURLToPath(new URL('../fixtures/sts/callgraph.yaml', import.meta.url));

export const SECRETS = {
  gateway: 'gateway-secret-0123456789',
  orders: 'orders-secret-0123456789',
  payments: 'payments-secret-0123456789',
  ledger: 'ledger-secret-0123456789',
  'billing-job': 'billing-secret-0123456789',
} as const;

export interface ClientKey {
  readonly privateKey: SigningPrivateKey;
  readonly publicJwk: JWK;
}

export async function clientKey(kid = 'client-1'): Promise<ClientKey> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  return { privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256' } };
}

/** A `private_key_jwt` client assertion (RFC 7523 §3) or a self-signed actor token. */
export async function clientJwt(
  clientId: string,
  key: ClientKey,
  audience: string,
  claims: Record<string, unknown> = {},
  ttlSeconds = 60,
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return await new SignJWT({ jti: crypto.randomUUID(), ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: key.publicJwk.kid as string })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(audience)
    .setIssuedAt(now)
    .setExpirationTime(now + ttlSeconds)
    .sign(key.privateKey);
}

export function assertionParams(assertion: string): Record<string, string> {
  return { client_assertion_type: JWT_BEARER_ASSERTION_TYPE, client_assertion: assertion };
}

export interface ConfigFile {
  readonly dir: string;
  readonly file: string;
  readonly config: StsConfig;
  remove(): void;
}

/** Writes an STS config (JSON is YAML) to a temp dir and loads it the way `baton sts` does. */
export function writeStsConfig(raw: Record<string, unknown>): ConfigFile {
  const dir = mkdtempSync(join(tmpdir(), 'baton-sts-'));
  const file = join(dir, 'sts.yaml');
  writeFileSync(file, JSON.stringify(raw, null, 2));
  return { dir, file, config: loadStsConfig({ file }), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function baseConfig(options: {
  issuer: string;
  idp?: { issuer: string; jwksUri: string };
  ordersJwks?: JWK[];
  extra?: Record<string, unknown>;
}): Record<string, unknown> {
  return {
    issuer: options.issuer,
    tokenTtlSeconds: 300,
    policy: { file: FIXTURE_POLICY },
    logLevel: 'silent',
    // mTLS is not the subject of these suites (test/sts/mtls.test.ts and test/e2e/ cover it).
    transport: { mode: 'plaintext' },
    clients: [
      { id: 'gateway', secret: SECRETS.gateway },
      options.ordersJwks === undefined
        ? { id: 'orders', secret: SECRETS.orders }
        : { id: 'orders', jwks: { keys: options.ordersJwks } },
      { id: 'payments', secret: SECRETS.payments },
      { id: 'ledger', secret: SECRETS.ledger },
      { id: 'billing-job', secret: SECRETS['billing-job'], scopes: ['orders:read', 'orders:write', 'payments:charge'] },
    ],
    externalIssuers:
      options.idp === undefined
        ? []
        : [{ issuer: options.idp.issuer, jwksUri: options.idp.jwksUri, audience: 'gateway' }],
    ...options.extra,
  };
}

export function basic(clientId: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}
