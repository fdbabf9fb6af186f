/**
 * The STS's subject-token verifier: how a verification failure becomes the
 * STS's answer. Here, an opaque subject token whose issuer's introspection
 * budget is spent (issue #23): 503 with Retry-After, never invalid_request
 * (the token may be good) and never a pass.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../src/telemetry/logger.ts';
import { KEY_SOURCE_DEFAULTS } from '../../src/token/config.ts';
import type { ExternalIssuerConfig } from '../../src/sts/config.ts';
import { SubjectTokenInvalidError } from '../../src/sts/errors.ts';
import { TokenIntrospectionThrottledError } from '../../src/token/errors.ts';
import { createSubjectTokenVerifier } from '../../src/sts/subject-token.ts';
import { closeServer, type Listening, listen } from '../helpers/http-server.ts';

describe('STS subject tokens from an introspecting issuer', () => {
  let endpoint: Listening;
  before(async () => {
    endpoint = await listen((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"active":false}');
    });
  });
  after(async () => {
    await closeServer(endpoint.server);
  });

  it('answers 503 BATON_TOKEN_INTROSPECTION_THROTTLED with a Retry-After once the budget for new tokens is spent', async () => {
    const clock = Date.UTC(2030, 0, 1);
    const external = {
      issuer: 'https://idp.opaque.test',
      jwksUri: 'http://127.0.0.1:9/jwks',
      profile: 'rfc9068',
      introspection: {
        endpoint: endpoint.url,
        clientId: 'baton-sts',
        clientSecret: 's3cret',
        authMethod: 'client_secret_basic',
        cacheMaxEntries: 100,
        maxCacheSeconds: 300,
        inactiveCacheSeconds: 10,
        maxCallsPerSecond: 1,
        timeoutMs: 2_000,
      },
    } as ExternalIssuerConfig;
    const verifier = createSubjectTokenVerifier({
      issuer: 'https://sts.test',
      jwks: { keys: [] },
      externalIssuers: [external],
      clockToleranceSec: 30,
      maxActDepth: 8,
      keySource: KEY_SOURCE_DEFAULTS,
      logger: createLogger({ name: 't', level: 'silent' }),
      now: () => clock,
    });
    try {
      const code = (promise: Promise<unknown>) =>
        promise.then(
          () => 'ok',
          (error: { code?: string; extensions?: { retryAfter?: unknown } }) =>
            `${error.code} ${String(error.extensions?.retryAfter ?? '')}`.trim(),
        );
      assert.equal(await code(verifier.verify('made-up-opaque-token-1', 'gateway')), SubjectTokenInvalidError.code);
      assert.equal(
        await code(verifier.verify('made-up-opaque-token-2', 'gateway')),
        `${TokenIntrospectionThrottledError.code} 1`,
      );
      assert.equal(endpoint.seen.length, 1);
    } finally {
      verifier.close();
    }
  });
});
