import assert from 'node:assert/strict';
import { after, beforeEach, describe, it } from 'node:test';
import { isHttpError } from '../../../src/core/errors.ts';
import { TokenType } from '../../../src/core/token-types.ts';
import {
  ExchangeRefusedError,
  StsBadAnswerError,
  StsThrottledError,
  StsUnavailableError,
} from '../../../src/sidecar/exchange/errors.ts';
import { TokenExpiredError } from '../../../src/token/errors.ts';
import {
  createTokenExchanger,
  type ExchangeClient,
  type TokenExchangerOptions,
} from '../../../src/sidecar/exchange/exchanger.ts';
import { createTokenCache } from '../../../src/sidecar/exchange/token-cache.ts';
import { capturingLogger, exchangeConfig, type StsStandIn, startStsStandIn } from '../../helpers/sts-stand-in.ts';
import { waitFor } from '../../helpers/net.ts';

const SUBJECT = 'eyJhbGciOiJFUzI1NiJ9.subject-token-for-tests.c2ln';
const sts = await startStsStandIn();
const exchangers: ExchangeClient[] = [];
const logs = capturingLogger();
let clock = 1_700_000_000_000;

function exchanger(overrides: Partial<TokenExchangerOptions> = {}): ExchangeClient {
  const now = (): number => clock;
  const created = createTokenExchanger({
    tokenEndpoint: sts.tokenEndpoint,
    clientId: 'orders',
    clientSecret: 'orders secret:with/odd+chars',
    authMethod: 'client_secret_basic',
    config: exchangeConfig(),
    cache: createTokenCache({ maxEntries: 100, logger: logs.logger, now }),
    logger: logs.logger,
    now,
    ...overrides,
  });
  exchangers.push(created);
  return created;
}

const exchange = (x: ExchangeClient, audience = 'payments', scope?: string) =>
  x.exchange({
    subjectToken: SUBJECT,
    subjectTokenType: TokenType.accessToken,
    audience,
    ...(scope === undefined ? {} : { scope }),
  });

function reset(s: StsStandIn): void {
  s.mode = 'ok';
  s.expiresIn = 300;
  s.delayMs = 0;
  s.requests.length = 0;
}

describe('token exchanger', () => {
  beforeEach(() => reset(sts));
  after(async () => {
    for (const x of exchangers) await x.close();
    await sts.close();
    for (const line of logs.lines) {
      assert.ok(
        !line.includes(SUBJECT) && !/"at-\d+"/.test(line) && !line.includes('odd+chars'),
        `a token or secret reached the log: ${line}`,
      );
    }
  });

  it('sends an RFC 8693 request authenticated with client_secret_basic, form-encoding id and secret', async () => {
    const issued = await exchange(exchanger(), 'payments', 'payments:charge');
    const { form, headers } = sts.requests[0]!;
    assert.equal(form.get('grant_type'), 'urn:ietf:params:oauth:grant-type:token-exchange');
    assert.equal(form.get('subject_token'), SUBJECT);
    assert.equal(form.get('subject_token_type'), TokenType.accessToken);
    assert.equal(form.get('audience'), 'payments');
    assert.equal(form.get('scope'), 'payments:charge');
    assert.equal(form.get('requested_token_type'), TokenType.accessToken);
    assert.equal(form.get('client_secret'), null);
    const decoded = Buffer.from(String(headers.authorization).replace(/^Basic /, ''), 'base64').toString();
    assert.equal(decoded, 'orders:orders+secret%3Awith%2Fodd%2Bchars');
    assert.equal(issued.cached, 'miss');
    assert.equal(issued.issuedTokenType, TokenType.accessToken);
    assert.equal(issued.expiresAt, Math.floor(clock / 1000) + 300);
  });

  it('authenticates with client_secret_post when configured', async () => {
    await exchange(exchanger({ authMethod: 'client_secret_post' }));
    const { form, headers } = sts.requests[0]!;
    assert.equal(form.get('client_id'), 'orders');
    assert.equal(form.get('client_secret'), 'orders secret:with/odd+chars');
    assert.equal(headers.authorization, undefined);
  });

  it('makes exactly one STS call for 100 concurrent misses on the same key', async () => {
    const x = exchanger();
    sts.delayMs = 50;
    const before = sts.calls();
    const results = await Promise.all(Array.from({ length: 100 }, () => exchange(x)));
    assert.equal(sts.calls() - before, 1);
    assert.equal(new Set(results.map((r) => r.accessToken)).size, 1);
  });

  it('serves a cached token without calling the STS', async () => {
    const x = exchanger();
    const first = await exchange(x);
    const before = sts.calls();
    const second = await exchange(x);
    assert.equal(second.cached, 'hit');
    assert.equal(second.accessToken, first.accessToken);
    assert.equal(sts.calls(), before);
  });

  it('keeps audiences, scopes and subject tokens apart in the cache', async () => {
    const x = exchanger();
    const a = await exchange(x, 'payments');
    const b = await exchange(x, 'shipping');
    const c = await exchange(x, 'payments', 'payments:charge');
    const d = await x.exchange({
      subjectToken: SUBJECT + 'x',
      subjectTokenType: TokenType.accessToken,
      audience: 'payments',
    });
    assert.equal(new Set([a, b, c, d].map((t) => t.accessToken)).size, 4);
  });

  it('refreshes in the background once when a hit is close to expiry, serving the cached token meanwhile', async () => {
    const x = exchanger({ config: exchangeConfig({ expiryMarginSeconds: 30, refreshAheadSeconds: 60 }) });
    sts.expiresIn = 120;
    const first = await exchange(x);
    clock += 40_000; // 80 s left: inside margin + refresh-ahead (90 s), outside the margin
    sts.delayMs = 30;
    const before = sts.calls();
    const stale = await Promise.all([exchange(x), exchange(x), exchange(x)]);
    assert.ok(stale.every((t) => t.cached === 'stale-refresh' && t.accessToken === first.accessToken));
    // Until the refresh lands, every answer is the cached token (and asks nothing more of the STS).
    const fresh = await waitFor(
      async () => {
        const answer = await exchange(x);
        return answer.cached === 'hit' ? answer : undefined;
      },
      { what: 'the background refresh', timeoutMs: 5_000, intervalMs: 5 },
    );
    assert.equal(sts.calls() - before, 1);
    assert.notEqual(fresh.accessToken, first.accessToken);
  });

  it('stops serving a cached token exchange.expiryMarginSeconds before its exp', async () => {
    const x = exchanger({ config: exchangeConfig({ expiryMarginSeconds: 30, refreshAheadSeconds: 0 }) });
    sts.expiresIn = 60;
    const first = await exchange(x);
    clock += 31_000;
    const next = await exchange(x);
    assert.equal(next.cached, 'miss');
    assert.notEqual(next.accessToken, first.accessToken);
  });

  it('relays a refusal as 403 with its OAuth error, and remembers it for exchange.refusalCacheMs', async () => {
    const x = exchanger({ config: exchangeConfig({ refusalCacheMs: 5_000 }) });
    sts.mode = 'refuse';
    const before = sts.calls();
    const refused = (e: unknown) =>
      e instanceof ExchangeRefusedError &&
      e.code === ExchangeRefusedError.code &&
      e.oauthError === 'invalid_target' &&
      e.status === 403;
    await assert.rejects(exchange(x), refused);
    await assert.rejects(exchange(x), refused);
    assert.equal(sts.calls() - before, 1);
    clock += 5_001;
    sts.mode = 'ok';
    assert.equal((await exchange(x)).cached, 'miss');
  });

  it('opens the circuit after repeated failures, fails fast while open, and closes after a good half-open probe', async () => {
    const x = exchanger({ config: exchangeConfig({ breaker: { failureThreshold: 3, openMs: 10_000 } }) });
    sts.mode = 'down';
    const unavailable = (e: unknown) => isHttpError(e) && e.code === StsUnavailableError.code && e.status === 503;
    for (let i = 0; i < 3; i++) await assert.rejects(exchange(x, `svc${i}`), unavailable);
    const before = sts.calls();
    await assert.rejects(exchange(x, 'svc9'), unavailable);
    assert.equal(sts.calls(), before, 'no call while open');
    clock += 10_000;
    sts.mode = 'ok';
    sts.delayMs = 30;
    const probes = await Promise.allSettled([exchange(x, 'a'), exchange(x, 'b')]);
    assert.equal(probes.filter((p) => p.status === 'fulfilled').length, 1, 'exactly one half-open probe');
    assert.equal((await exchange(x, 'b')).cached, 'miss');
  });

  it('does not count refusals against the circuit', async () => {
    const x = exchanger({
      config: exchangeConfig({ breaker: { failureThreshold: 2, openMs: 10_000 }, refusalCacheMs: 0 }),
    });
    sts.mode = 'refuse';
    for (let i = 0; i < 5; i++) await assert.rejects(exchange(x), ExchangeRefusedError);
    sts.mode = 'ok';
    await exchange(x);
  });

  it('keeps serving a cached token while the STS is down, and answers 503 for anything uncached', async () => {
    const x = exchanger({ config: exchangeConfig({ breaker: { failureThreshold: 1, openMs: 60_000 } }) });
    const first = await exchange(x);
    sts.mode = 'down';
    await assert.rejects(exchange(x, 'other'), StsUnavailableError);
    const again = await exchange(x);
    assert.equal(again.cached, 'hit');
    assert.equal(again.accessToken, first.accessToken);
  });

  it('gives up on an STS that does not answer within the headers timeout', async () => {
    const x = exchanger({ config: exchangeConfig({ timeoutMs: 200 }) });
    sts.mode = 'hang';
    const started = Date.now();
    await assert.rejects(exchange(x), StsUnavailableError);
    assert.ok(Date.now() - started < 2_000);
  });

  it('rejects a response whose token_type is not Bearer', async () => {
    sts.mode = 'bad-type';
    await assert.rejects(exchange(exchanger()), StsBadAnswerError);
  });

  it("counts only outages against the circuit: expired tokens, 429s and bad answers are the request's own error", async () => {
    const x = exchanger({
      config: exchangeConfig({ breaker: { failureThreshold: 2, openMs: 10_000 }, refusalCacheMs: 0 }),
    });
    sts.expiresIn = 0;
    for (let i = 0; i < 4; i++)
      await assert.rejects(
        exchange(x, `expired${i}`),
        (e: unknown) => e instanceof TokenExpiredError && e.reason === 'exchanged' && e.status === 401,
      );
    sts.expiresIn = -30;
    await assert.rejects(exchange(x, 'negative'), { code: TokenExpiredError.code, reason: 'exchanged' });
    sts.expiresIn = 300;
    sts.mode = 'throttle';
    for (let i = 0; i < 4; i++) await assert.rejects(exchange(x, `throttled${i}`), StsThrottledError);
    sts.mode = 'bad-type';
    for (let i = 0; i < 4; i++) await assert.rejects(exchange(x, `bad${i}`), StsBadAnswerError);
    sts.mode = 'ok';
    assert.equal((await exchange(x, 'after')).cached, 'miss');
  });

  it('gets a service-identity token with client_credentials', async () => {
    const x = exchanger();
    const issued = await x.serviceToken({ audience: 'payments' });
    const { form } = sts.requests[0]!;
    assert.equal(form.get('grant_type'), 'client_credentials');
    assert.equal(form.get('audience'), 'payments');
    assert.equal(form.get('subject_token'), null);
    assert.equal((await x.serviceToken({ audience: 'payments' })).accessToken, issued.accessToken);
  });
});
