/**
 * A development identity provider for the demo mesh: it plays the user's
 * IdP (an OpenID Provider in production) and hands out RFC 9068 access
 * tokens for a named user, audience-restricted to the entry service.
 * Loopback and demos only: it authenticates nobody.
 */
import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { ACCESS_TOKEN_JWT_TYP } from '../core/token-types.ts';

export interface DevIdentityProvider {
  readonly issuer: string;
  readonly jwksUri: string;
  issueUserToken(request: UserTokenRequest): Promise<string>;
  close(): Promise<void>;
}

export interface UserTokenRequest {
  readonly sub: string;
  readonly audience: string;
  readonly scope: string;
  readonly acr?: string | undefined;
  readonly ttlSeconds?: number;
}

const KID = 'dev-idp-1';

export async function startDevIdentityProvider(
  options: { host?: string; port?: number; issuer?: string | undefined } = {},
): Promise<DevIdentityProvider> {
  const host = options.host ?? '127.0.0.1';
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid: KID, alg: 'ES256', use: 'sig' };
  const app: FastifyInstance = Fastify({ logger: false });
  let issuer = '';

  const issueUserToken = async (request: UserTokenRequest): Promise<string> => {
    const now = Math.floor(Date.now() / 1000);
    return await new SignJWT({
      scope: request.scope,
      client_id: 'demo-web',
      auth_time: now,
      ...(request.acr === undefined ? {} : { acr: request.acr }),
    })
      .setProtectedHeader({ alg: 'ES256', kid: KID, typ: ACCESS_TOKEN_JWT_TYP })
      .setIssuer(issuer)
      .setSubject(request.sub)
      .setAudience(request.audience)
      .setIssuedAt(now)
      .setExpirationTime(now + (request.ttlSeconds ?? 900))
      .setJti(randomUUID())
      .sign(privateKey);
  };

  const metadata = () => ({
    issuer,
    jwks_uri: `${issuer}/jwks`,
    token_endpoint: `${issuer}/dev/token`,
    id_token_signing_alg_values_supported: ['ES256'],
  });
  app.get('/.well-known/openid-configuration', async () => metadata());
  app.get('/.well-known/oauth-authorization-server', async () => metadata());
  app.get('/jwks', async () => ({ keys: [publicJwk] }));
  // Dev only: a token for whoever asks. Form or query: sub, aud, scope, acr, ttl (seconds, 1 to 86400; default 900).
  app.post<{ Body: Record<string, string> | undefined }>('/dev/token', async (request, reply) => {
    const body = request.body ?? {};
    const sub = body.sub ?? 'alice';
    const ttl = /^\d{1,5}$/.test(body.ttl ?? '') ? Math.min(86_400, Math.max(1, Number(body.ttl))) : 900;
    const token = await issueUserToken({
      sub,
      audience: body.aud ?? 'gateway',
      scope: body.scope ?? '',
      acr: body.acr,
      ttlSeconds: ttl,
    });
    return reply
      .header('cache-control', 'no-store')
      .send({ access_token: token, token_type: 'Bearer', expires_in: ttl });
  });
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });

  const address = await app.listen({ host, port: options.port ?? 0 });
  // Behind compose or Kubernetes the issuer is the name others reach it by, not the bind address.
  issuer = options.issuer ?? address.replace('localhost', '127.0.0.1');
  return { issuer, jwksUri: `${issuer}/jwks`, issueUserToken, close: async () => void (await app.close()) };
}
