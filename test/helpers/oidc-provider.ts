/**
 * panva's certified OpenID Provider on loopback, issuing access tokens for
 * the resource `urn:baton:gateway` (aud `gateway`) by client credentials,
 * either as RFC 9068 JWTs or opaque, with RFC 7662 introspection and
 * RFC 7009 revocation enabled. A user token needs an interactive login, so
 * its tokens have no resource owner: their `sub` is the client.
 */
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';
import { freePort } from './net.ts';

export const OP_CLIENT = { id: 'web', secret: 'web-client-secret-0123456789' } as const;
export const OP_INTROSPECTOR = { id: 'baton-introspect', secret: 'introspect-secret-0123456789' } as const;

export interface OidcProvider {
  readonly issuer: string;
  /** A client-credentials access token for the gateway resource. */
  accessToken(scope?: string): Promise<string>;
  revoke(token: string): Promise<void>;
  /** Requests to the introspection endpoint so far. */
  readonly introspections: () => number;
  close(): Promise<void>;
}

export async function startOidcProvider(options: { format: 'jwt' | 'opaque'; path?: string }): Promise<OidcProvider> {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}${options.path ?? ''}`;
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
  const provider = new Provider(issuer, {
    scopes: ['orders:read', 'orders:write', 'shop'],
    ttl: { ClientCredentials: 600 },
    clients: [
      {
        client_id: OP_CLIENT.id,
        client_secret: OP_CLIENT.secret,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        id_token_signed_response_alg: 'ES256',
        scope: 'orders:read orders:write shop',
      },
      {
        client_id: OP_INTROSPECTOR.id,
        client_secret: OP_INTROSPECTOR.secret,
        grant_types: [],
        redirect_uris: [],
        response_types: [],
        id_token_signed_response_alg: 'ES256',
      },
    ],
    jwks: { keys: [{ ...(await exportJWK(privateKey)), kid: 'op-1', alg: 'ES256', use: 'sig' }] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // Only baton's introspection client may ask.
      introspection: { enabled: true, allowedPolicy: (_ctx, client) => client.clientId === OP_INTROSPECTOR.id },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => 'urn:baton:gateway',
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: 'orders:read orders:write shop',
          audience: 'gateway',
          ...(options.format === 'jwt'
            ? { accessTokenFormat: 'jwt' as const, jwt: { sign: { alg: 'ES256' as const } } }
            : { accessTokenFormat: 'opaque' as const }),
        }),
      },
    },
  });
  let introspections = 0;
  provider.on('introspection.error', () => {});
  const callback = provider.callback();
  const { createServer } = await import('node:http');
  const server = createServer((req, res) => {
    if (req.method === 'POST' && (req.url ?? '').includes('/token/introspection')) introspections++;
    // Mounted under the issuer's path, as an IdP with a realm in its issuer is.
    if (options.path !== undefined && req.url?.startsWith(options.path)) {
      // What express does for app.use(path, provider.callback()): oidc-provider builds its URLs from baseUrl.
      Object.assign(req, { originalUrl: req.url, baseUrl: options.path });
      req.url = req.url.slice(options.path.length) || '/';
    }
    void callback(req, res);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    issuer,
    async accessToken(scope = 'orders:read shop') {
      const response = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: basic(OP_CLIENT.id, OP_CLIENT.secret),
        },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          scope,
          resource: 'urn:baton:gateway',
        }).toString(),
      });
      const body = (await response.json()) as { access_token?: string; error?: string; error_description?: string };
      if (body.access_token === undefined)
        throw new Error(`oidc-provider refused: ${body.error}: ${body.error_description}`);
      return body.access_token;
    },
    async revoke(token) {
      const response = await fetch(`${issuer}/token/revocation`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: basic(OP_CLIENT.id, OP_CLIENT.secret),
        },
        body: new URLSearchParams({ token }).toString(),
      });
      if (response.status !== 200) throw new Error(`oidc-provider revocation answered ${response.status}`);
    },
    introspections: () => introspections,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
