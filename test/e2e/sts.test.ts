import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createRemoteJWKSet, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { TOKEN_EXCHANGE_GRANT, TokenType } from '../../src/core/token-types.ts';
import { freePort, waitFor } from '../helpers/net.ts';
import { logLinesOut, runBaton, type RunningProcess, startBaton } from '../helpers/process.ts';
import { type RedisServer, startRedis, writeMeshRedisSecrets } from '../helpers/redis.ts';
import { startTestIdp, type TestIdp } from '../helpers/sts-idp.ts';
import {
  assertionParams,
  baseConfig,
  basic,
  clientJwt,
  type ClientKey,
  clientKey,
  type ConfigFile,
  SECRETS,
  writeStsConfig,
} from '../helpers/sts.ts';
import { ExternalTokenNotAtEntrypointError, SubjectTokenInvalidError } from '../../src/sts/errors.ts';
import { TokenExpiredError, TokenWrongAudienceError } from '../../src/token/errors.ts';

interface TokenAnswer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Record<string, unknown>;
}

async function postToken(
  url: string,
  form: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<TokenAnswer> {
  const response = await fetch(`${url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as Record<string, unknown>,
  };
}

async function startSts(configFile: ConfigFile): Promise<RunningProcess> {
  const sts = startBaton(['sts', '--config', configFile.file], { BATON_LOG_LEVEL: 'info' });
  await sts.waitForOutput(/"msg":"sts listening"/);
  return sts;
}

function noneAlgToken(payload: Record<string, unknown>): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${encode({ alg: 'none', typ: 'at+jwt' })}.${encode(payload)}.`;
}

describe('baton sts over HTTP: a three-hop chain gateway -> orders -> payments and every refusal', () => {
  let idp: TestIdp;
  let ordersKey: ClientKey;
  let configFile: ConfigFile;
  let sts: RunningProcess;
  let url: string;

  before(async () => {
    idp = await startTestIdp();
    ordersKey = await clientKey('orders-1');
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    configFile = writeStsConfig(
      baseConfig({ issuer: url, idp, ordersJwks: [ordersKey.publicJwk], extra: { port, logLevel: 'info' } }),
    );
    sts = await startSts(configFile);
  });
  after(async () => {
    await sts.stop();
    await idp.close();
    configFile.remove();
  });

  const gatewayExchange = (subjectToken: string, form: Record<string, string> = {}) =>
    postToken(
      url,
      {
        grant_type: TOKEN_EXCHANGE_GRANT,
        subject_token: subjectToken,
        subject_token_type: TokenType.accessToken,
        audience: 'orders',
        ...form,
      },
      { authorization: basic('gateway', SECRETS.gateway) },
    );
  const ordersExchange = async (subjectToken: string, form: Record<string, string> = {}) =>
    postToken(url, {
      grant_type: TOKEN_EXCHANGE_GRANT,
      subject_token: subjectToken,
      subject_token_type: TokenType.accessToken,
      audience: 'payments',
      ...assertionParams(await clientJwt('orders', ordersKey, `${url}/token`)),
      ...form,
    });
  const paymentsExchange = (subjectToken: string, audience: string, clientId: 'payments' | 'ledger' = 'payments') =>
    postToken(url, {
      grant_type: TOKEN_EXCHANGE_GRANT,
      subject_token: subjectToken,
      subject_token_type: TokenType.accessToken,
      audience,
      client_id: clientId,
      client_secret: SECRETS[clientId],
    });

  it('mints the chain with nested act, one audience per hop and narrowing scope, verifiable against /jwks', async () => {
    const jwks = createRemoteJWKSet(new URL(`${url}/jwks`));
    const userToken = await idp.userToken({
      sub: 'alice',
      scope: 'openid profile orders:read payments:charge ledger:write',
    });

    const hop1 = await gatewayExchange(userToken);
    assert.equal(hop1.status, 200, JSON.stringify(hop1.body));
    const toOrders = (
      await jwtVerify(hop1.body.access_token as string, jwks, { issuer: url, audience: 'orders', typ: 'at+jwt' })
    ).payload;
    assert.deepEqual(toOrders.act, { sub: 'gateway' });
    assert.equal(toOrders.scope, 'ledger:write orders:read payments:charge');

    const hop2 = await ordersExchange(hop1.body.access_token as string);
    assert.equal(hop2.status, 200, JSON.stringify(hop2.body));
    const toPayments = (
      await jwtVerify(hop2.body.access_token as string, jwks, { issuer: url, audience: 'payments', typ: 'at+jwt' })
    ).payload;
    assert.deepEqual(toPayments.act, { sub: 'orders', act: { sub: 'gateway' } });
    assert.equal(toPayments.client_id, 'orders');
    assert.equal(toPayments.scope, 'ledger:write payments:charge');

    const hop3 = await paymentsExchange(hop2.body.access_token as string, 'ledger');
    assert.equal(hop3.status, 200, JSON.stringify(hop3.body));
    const toLedger = (
      await jwtVerify(hop3.body.access_token as string, jwks, { issuer: url, audience: 'ledger', typ: 'at+jwt' })
    ).payload;
    assert.deepEqual(toLedger.act, { sub: 'payments', act: { sub: 'orders', act: { sub: 'gateway' } } });
    assert.equal(toLedger.scope, 'ledger:write');
    for (const claims of [toOrders, toPayments, toLedger]) {
      assert.equal(claims.sub, 'alice');
      assert.equal(claims.sub_type, 'user');
      assert.equal(claims.txn, toOrders.txn);
    }
  });

  it('refuses a wrong client secret with invalid_client, 401 and a Basic challenge', async () => {
    const response = await postToken(
      url,
      {
        grant_type: TOKEN_EXCHANGE_GRANT,
        subject_token: await idp.userToken(),
        subject_token_type: TokenType.accessToken,
        audience: 'orders',
      },
      { authorization: basic('gateway', 'not-the-gateway-secret') },
    );
    assert.equal(response.status, 401);
    assert.equal(response.body.error, 'invalid_client');
    assert.match(response.headers.get('www-authenticate') ?? '', /^Basic realm="baton-sts"/);
    assert.equal(response.headers.get('cache-control'), 'no-store');
  });

  it('refuses a replayed private_key_jwt client assertion', async () => {
    const hop1 = await gatewayExchange(await idp.userToken());
    const assertion = await clientJwt('orders', ordersKey, `${url}/token`);
    const form = {
      grant_type: TOKEN_EXCHANGE_GRANT,
      subject_token: hop1.body.access_token as string,
      subject_token_type: TokenType.accessToken,
      audience: 'payments',
      ...assertionParams(assertion),
    };
    assert.equal((await postToken(url, form)).status, 200);
    const replay = await postToken(url, form);
    assert.equal(replay.status, 401);
    assert.equal(replay.body.error, 'invalid_client');
  });

  it('refuses a subject token not addressed to the presenting client', async () => {
    const hop1 = await gatewayExchange(await idp.userToken());
    // payments did not receive this token: it was minted for orders.
    const response = await paymentsExchange(hop1.body.access_token as string, 'ledger');
    assert.equal(response.status, 400);
    assert.equal(response.body.error, 'invalid_request');
    assert.deepEqual(
      [response.body.code, response.body.reason],
      [SubjectTokenInvalidError.code, TokenWrongAudienceError.code],
    );
  });

  it('refuses an edge the call graph forbids with invalid_target naming the rule', async () => {
    const response = await gatewayExchange(await idp.userToken(), { audience: 'payments' });
    assert.equal(response.status, 400);
    assert.equal(response.body.error, 'invalid_target');
    assert.match(String(response.body.error_description), /payments\.accepts/);
  });

  it('refuses a chain deeper than maxDepth', async () => {
    const hop1 = await gatewayExchange(await idp.userToken());
    const hop2 = await ordersExchange(hop1.body.access_token as string);
    const hop3 = await paymentsExchange(hop2.body.access_token as string, 'ledger');
    const hop4 = await paymentsExchange(hop3.body.access_token as string, 'audit', 'ledger');
    assert.equal(hop4.status, 400);
    assert.equal(hop4.body.error, 'invalid_target');
    assert.match(String(hop4.body.error_description), /depth_exceeded/);
  });

  it('refuses a scope wider than the subject token with invalid_scope', async () => {
    const response = await gatewayExchange(await idp.userToken({ scope: 'orders:read' }), {
      scope: 'orders:read orders:write',
    });
    assert.equal(response.status, 400);
    assert.equal(response.body.error, 'invalid_scope');
  });

  it('refuses an external identity provider token at a service that is not an entrypoint', async () => {
    const response = await ordersExchange(await idp.userToken());
    assert.equal(response.status, 400);
    assert.equal(response.body.error, 'invalid_request');
    assert.equal(response.body.code, ExternalTokenNotAtEntrypointError.code);
  });

  it('refuses an expired subject token', async () => {
    const response = await gatewayExchange(await idp.userToken({}, { ttlSeconds: -300 }));
    assert.equal(response.status, 400);
    assert.equal(response.body.error, 'invalid_request');
    assert.deepEqual(
      [response.body.code, response.body.reason],
      [SubjectTokenInvalidError.code, TokenExpiredError.code],
    );
  });

  it('refuses an alg none subject token', async () => {
    const now = Math.floor(Date.now() / 1000);
    const forged = noneAlgToken({
      iss: idp.issuer,
      sub: 'mallory',
      aud: 'gateway',
      exp: now + 300,
      iat: now,
      scope: 'orders:read',
    });
    const response = await gatewayExchange(forged);
    assert.equal(response.status, 400);
    assert.equal(response.body.error, 'invalid_request');
  });

  it('refuses subject tokens signed by a foreign key, whether they claim the IdP or the STS as issuer', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const fromIdp = await idp.userToken({}, { key: privateKey });
    assert.equal((await gatewayExchange(fromIdp)).body.error, 'invalid_request');
    const now = Math.floor(Date.now() / 1000);
    const asSts = await new SignJWT({
      sub: 'mallory',
      aud: 'payments',
      client_id: 'orders',
      act: { sub: 'orders', act: { sub: 'gateway' } },
      txn: 't',
      sub_type: 'user',
      scope: 'ledger:write',
    })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'forged' })
      .setIssuer(url)
      .setIssuedAt(now)
      .setExpirationTime(now + 60)
      .sign(privateKey);
    const response = await paymentsExchange(asSts, 'ledger');
    assert.equal(response.status, 400);
    assert.equal(response.body.error, 'invalid_request');
  });

  it('writes JSON logs without any token in them', async () => {
    // The log writer batches lines (up to 16 KiB or 200 ms, src/telemetry/logger.ts): wait for them, never assume them written.
    await waitFor(async () => (sts.stdout() + sts.stderr()).includes('"msg":"token issued"'), {
      timeoutMs: 5_000,
      what: 'the token issued lines',
    });
    const output = sts.stdout() + sts.stderr();
    assert.doesNotMatch(output, /eyJ[A-Za-z0-9_-]{10,}\./);
    for (const secret of Object.values(SECRETS)) assert.ok(!output.includes(secret));
  });
});

describe('baton sts process lifecycle', () => {
  it('is ready with a policy, warns loudly about dev keys, and exits 0 on SIGTERM', async (t) => {
    const port = await freePort();
    const configFile = writeStsConfig(
      baseConfig({ issuer: `http://127.0.0.1:${port}`, extra: { port, logLevel: 'info' } }),
    );
    t.after(() => configFile.remove());
    const sts = await startSts(configFile);
    t.after(() => sts.stop('SIGKILL'));
    assert.match(sts.stdout(), /"level":"warn".*DEVELOPMENT ONLY/);
    assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200);
    assert.equal(await sts.stop('SIGTERM'), 0);
  });

  it('shares replay protection across replicas through Redis, as its own ACL user', async (t) => {
    const secrets = await writeMeshRedisSecrets(['orders']);
    const redis: RedisServer = await startRedis({ aclFile: secrets.aclFile });
    const running: RunningProcess[] = [];
    // Replicas stop before Redis does, as in an orderly rollout.
    t.after(async () => {
      await Promise.all(running.map((p) => p.stop()));
      await redis.stop();
      secrets.remove();
    });
    const key = await clientKey('orders-1');
    const [portA, portB] = [await freePort(), await freePort()];
    const issuer = 'http://sts.mesh';
    const keysDir = mkdtempSync(join(tmpdir(), 'baton-sts-keys-'));
    t.after(() => rmSync(keysDir, { recursive: true, force: true }));
    const replica = (port: number) =>
      writeStsConfig(
        baseConfig({
          issuer,
          ordersJwks: [key.publicJwk],
          extra: { redis: { url: redis.url, passwordFile: secrets.sts.passwordFile }, port, keys: { dir: keysDir } },
        }),
      );
    const [configA, configB] = [replica(portA), replica(portB)];
    t.after(() => {
      configA.remove();
      configB.remove();
    });
    running.push(await startSts(configA));
    running.push(await startSts(configB));
    const assertion = await clientJwt('orders', key, `${issuer}/token`);
    const form = { grant_type: 'client_credentials', audience: 'inventory', ...assertionParams(assertion) };
    const first = await postToken(`http://127.0.0.1:${portA}`, form);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const replayed = await postToken(`http://127.0.0.1:${portB}`, form);
    assert.equal(replayed.status, 401);
    assert.equal(replayed.body.error, 'invalid_client');
  });

  it('refuses a replayed assertion when it cannot authenticate to Redis, as in an outage (logged once)', async (t) => {
    const secrets = await writeMeshRedisSecrets(['orders']);
    const redis: RedisServer = await startRedis({ aclFile: secrets.aclFile });
    const wrong = join(secrets.dir, 'wrong-password');
    writeFileSync(wrong, 'not-the-sts-password\n');
    const key = await clientKey('orders-1');
    const port = await freePort();
    const issuer = 'http://sts.mesh';
    const config = writeStsConfig(
      baseConfig({
        issuer,
        ordersJwks: [key.publicJwk],
        extra: { redis: { url: redis.url, passwordFile: wrong }, port },
      }),
    );
    const sts = await startSts(config);
    t.after(async () => {
      await sts.stop();
      await redis.stop();
      config.remove();
      secrets.remove();
    });
    const assertion = await clientJwt('orders', key, `${issuer}/token`);
    const form = { grant_type: 'client_credentials', audience: 'inventory', ...assertionParams(assertion) };
    const first = await postToken(`http://127.0.0.1:${port}`, form);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    for (let i = 0; i < 3; i++) {
      const replayed = await postToken(`http://127.0.0.1:${port}`, form);
      assert.equal(replayed.status, 401);
      assert.equal(replayed.body.error, 'invalid_client');
    }
    // Logged once, however often it recurs; its line may sit up to 200 ms in the STS's log buffer.
    const authFaults = () =>
      sts
        .stdout()
        .split('\n')
        .filter((l) => l.includes('"fault":"auth"')).length;
    await waitFor(async () => authFaults() > 0, { what: 'the Redis auth fault line', timeoutMs: 5_000 });
    await logLinesOut(); // a second line, if any, would be out by now
    assert.equal(authFaults(), 1);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.match(metrics, /^baton_sts_redis_faults_total\{fault="auth"\} 1$/m);
    assert.match(metrics, /^baton_sts_redis_available 0$/m);
    assert.ok(!sts.stdout().includes(assertion) && !sts.stdout().includes('not-the-sts-password'));
  });

  it('does not start with an unreadable Redis password file', async () => {
    const port = await freePort();
    const config = writeStsConfig(
      baseConfig({
        issuer: 'http://sts.mesh',
        ordersJwks: [(await clientKey('o')).publicJwk],
        extra: { redis: { url: 'redis://127.0.0.1:1', passwordFile: '/nonexistent/password' }, port },
      }),
    );
    try {
      const run = await runBaton(['sts', '--config', config.file]);
      assert.equal(run.code, 78, run.stderr);
      assert.match(run.stderr, /redis\.passwordFile/);
    } finally {
      config.remove();
    }
  });
});
