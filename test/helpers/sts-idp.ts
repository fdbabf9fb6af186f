import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';
import { listenOnLoopback } from './net.ts';

type SigningPrivateKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

export interface TestIdp {
  readonly issuer: string;
  readonly jwksUri: string;
  /** An RFC 9068 access token for a user, signed with the IdP key unless told otherwise. */
  userToken(
    claims?: JWTPayload,
    options?: { header?: Record<string, unknown>; key?: SigningPrivateKey; ttlSeconds?: number },
  ): Promise<string>;
  close(): Promise<void>;
}

/** A minimal external identity provider on loopback: a JWKS endpoint and a signer. */
export async function startTestIdp(): Promise<TestIdp> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'idp-1', alg: 'ES256', use: 'sig' };
  const server: Server = createServer((req, res) => {
    if (req.url === '/jwks') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
    } else {
      res.writeHead(404).end();
    }
  });
  await listenOnLoopback(server);
  const address = server.address();
  const issuer = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
  return {
    issuer,
    jwksUri: `${issuer}/jwks`,
    async userToken(claims = {}, options = {}) {
      const now = Math.floor(Date.now() / 1000);
      return await new SignJWT({
        sub: 'alice',
        aud: 'gateway',
        scope: 'openid orders:read payments:charge ledger:write',
        client_id: 'web',
        auth_time: now - 60,
        acr: 'urn:baton:acr:mfa',
        ...claims,
      })
        .setProtectedHeader({ alg: 'ES256', kid: 'idp-1', typ: 'at+jwt', ...options.header })
        .setIssuer(issuer)
        .setIssuedAt(now)
        .setExpirationTime(now + (options.ttlSeconds ?? 600))
        .setJti(randomUUID())
        .sign(options.key ?? privateKey);
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
