import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import type { VerifiedToken } from '../../src/token/verified-token.ts';

export interface TestSigner {
  readonly kid: string;
  readonly alg: string;
  readonly publicJwk: JWK;
  sign(claims: Record<string, unknown>, header?: Record<string, unknown>): Promise<string>;
}

/** A signing key pair as an issuer would hold it, with its public JWK. */
export async function createSigner(kid: string, alg = 'ES256'): Promise<TestSigner> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return {
    kid,
    alg,
    publicJwk,
    sign: (claims, header = {}) =>
      new SignJWT(claims).setProtectedHeader({ alg, kid, typ: 'at+jwt', ...header }).sign(privateKey),
  };
}

export const nowSec = (): number => Math.floor(Date.now() / 1000);

/** The identity provider that authenticated the users of `meshClaims`. */
export const USER_IDP = 'https://idp.example.test';

/**
 * Claims of a token the mesh STS would mint for `aud`, exchanged along
 * `chain`; its RFC 9493 `sub_id` names USER_IDP for a user, the STS for a
 * service, unless `extra` sets one.
 */
export function meshClaims(
  issuer: string,
  aud: string,
  chain: readonly string[],
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  let act: Record<string, unknown> | undefined;
  for (const sub of chain) act = act === undefined ? { sub } : { sub, act };
  const claims: Record<string, unknown> = {
    iss: issuer,
    sub: 'alice',
    sub_type: 'user',
    aud,
    client_id: chain[chain.length - 1],
    exp: nowSec() + 300,
    iat: nowSec(),
    jti: `jti-${Math.random()}`,
    scope: 'orders:read orders:write',
    txn: 'txn-1',
    ...(act === undefined ? {} : { act }),
    ...extra,
  };
  if (!('sub_id' in extra))
    claims.sub_id = { format: 'iss_sub', iss: claims.sub_type === 'service' ? issuer : USER_IDP, sub: claims.sub };
  return claims;
}

/** Re-encodes a JWS segment by hand (for crafting hostile tokens). */
export function segment(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

/** What the verifier makes of a mesh token: alice's, called by gateway, unbound, valid until 2033; a test overrides what it looks at. */
export function verifiedMeshToken(overrides: Partial<VerifiedToken> = {}): VerifiedToken {
  return {
    claims: {},
    issuer: 'https://sts.test',
    kind: 'mesh',
    subject: 'alice',
    subjectIssuer: 'https://idp.test',
    user: true,
    chain: ['gateway'],
    scopes: new Set(),
    txn: undefined,
    acr: undefined,
    authTime: undefined,
    clientId: 'gateway',
    expiresAt: 2_000_000_000,
    jti: undefined,
    confirmation: undefined,
    ...overrides,
  };
}
