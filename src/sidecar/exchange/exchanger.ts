/**
 * The sidecar's outbound half of RFC 8693: trade the subject token for one
 * audience-restricted to the target, as cheaply and as safely as possible.
 *
 *   cached and fresh      → the cached token
 *   cached, nearly stale  → the cached token, and one background refresh
 *   recently refused      → the same refusal, without asking again
 *   otherwise             → one STS call per key however many callers wait
 *
 * A failing STS trips a circuit breaker; cached tokens keep working until
 * shortly before they expire (DESIGN "STS down").
 */
import { hash } from 'node:crypto';
import type { Dispatcher } from 'undici';
import { CLIENT_CREDENTIALS_GRANT, TOKEN_EXCHANGE_GRANT, TokenType } from '../../core/token-types.ts';
import { withExchangeSpan } from '../../telemetry/exchange-span.ts';
import type { Logger } from 'pino';
import { type Tracing, TRACING_OFF } from '../../telemetry/tracing.ts';
import { createCircuitBreaker } from './circuit-breaker.ts';
import { ExchangeRefusedError, StsUnavailableError } from './errors.ts';
import { createStsClient } from './sts-client.ts';
import type { CachedToken, TokenCache } from './token-cache.ts';
import type { SidecarClientAuthMethod } from '../../core/client-auth-method.ts';
import type { ExchangeConfig } from '../config.ts';

export interface IssuedToken {
  readonly accessToken: string;
  /** Epoch seconds. */
  readonly expiresAt: number;
  readonly scope: string;
  readonly issuedTokenType: string;
  readonly cached: 'hit' | 'miss' | 'stale-refresh';
}

/**
 * RFC 8705 §3: the certificate a token is bound to, and the connection
 * that presents it. The cache is keyed by the thumbprint, so a rotation
 * exchanges again instead of sending a token bound to the old key.
 */
export interface CertificateBinding {
  readonly thumbprint: string;
  readonly dispatcher: Dispatcher;
}

export interface ExchangeRequest {
  readonly binding?: CertificateBinding | undefined;
  readonly subjectToken: string;
  readonly subjectTokenType: string;
  /** The target service. */
  readonly audience: string;
  readonly scope?: string;
}

export interface ServiceTokenRequest {
  readonly binding?: CertificateBinding | undefined;
  readonly audience: string;
  readonly scope?: string;
}

export interface TokenExchanger {
  /** RFC 8693 token exchange for the subject an inbound request carried. */
  readonly exchange: (request: ExchangeRequest) => Promise<IssuedToken>;
  /** This service's own token (client credentials), for a call made on no one's behalf. */
  readonly serviceToken: (request: ServiceTokenRequest) => Promise<IssuedToken>;
}

/** The exchanger the sidecar's wiring owns: the data plane's TokenExchanger, and the pool to close at shutdown. */
export type ExchangeClient = TokenExchanger & { readonly close: () => Promise<void> };

export interface TokenExchangerOptions {
  readonly tokenEndpoint: string;
  readonly clientId: string;
  readonly clientSecret?: string | undefined;
  readonly authMethod: SidecarClientAuthMethod;
  readonly dispatcher?: Dispatcher;
  readonly cache: TokenCache;
  /** The sidecar's `exchange` settings, whole: margins, refusal memory, breaker, timeouts (src/sidecar/config.ts has their defaults). */
  readonly config: ExchangeConfig;
  readonly logger: Logger;
  /** Exchanges that wait for Redis or the STS get a span when tracing is on. */
  readonly tracing?: Tracing;
  /** Milliseconds. */
  readonly now?: () => number;
}

const NEGATIVE_CACHE_MAX = 10_000;

export function createTokenExchanger(options: TokenExchangerOptions): ExchangeClient {
  const now = options.now ?? Date.now;
  const { cache, logger, config } = options;
  const { expiryMarginSeconds: marginSec, refreshAheadSeconds: refreshAheadSec, refusalCacheMs } = config;
  const breaker = createCircuitBreaker({ ...config.breaker, now });
  const sts = createStsClient({
    tokenEndpoint: options.tokenEndpoint,
    clientId: options.clientId,
    clientSecret: options.clientSecret,
    authMethod: options.authMethod,
    ...(options.dispatcher === undefined ? {} : { dispatcher: options.dispatcher }),
    connectTimeoutMs: config.connectTimeoutMs,
    timeoutMs: config.timeoutMs,
  });
  const inflight = new Map<string, Promise<CachedToken>>();
  const refusals = new Map<string, { until: number; oauthError: string }>();
  // The client is part of the key: the same subject token exchanged by two services yields two different act chains.
  const keyPrefix = hash('sha256', `${options.tokenEndpoint}\n${options.clientId}`, 'base64url');

  const { enabled: traced, tracer } = options.tracing ?? TRACING_OFF;
  const tokenEndpointUrl = new URL(options.tokenEndpoint);
  /**
   * A fresh token in the in-process tier is the steady state: answered
   * without building the STS request or an exchange span (the request's
   * span records `baton.exchange.cache=hit`). Everything else may wait for
   * Redis or the STS, and is traced as an exchange.
   */
  function issue(
    key: string,
    audience: string,
    params: () => Record<string, string>,
    via: Dispatcher | undefined,
  ): Promise<IssuedToken> {
    const local = cache.peek(key);
    if (local !== undefined && !dueForRefresh(local, now() / 1000)) return Promise.resolve({ ...local, cached: 'hit' });
    return traced
      ? withExchangeSpan(tracer, tokenEndpointUrl, audience, () => obtain(key, audience, params(), via))
      : obtain(key, audience, params(), via);
  }

  /** Still served, but within refresh-ahead of the point where it stops being served. */
  function dueForRefresh(token: CachedToken, nowSec: number): boolean {
    return token.expiresAt - marginSec - refreshAheadSec <= nowSec;
  }

  async function obtain(
    key: string,
    audience: string,
    params: Record<string, string>,
    via: Dispatcher | undefined,
  ): Promise<IssuedToken> {
    const nowSec = now() / 1000;
    const cached = await cache.get(key);
    if (cached !== undefined && cached.expiresAt - marginSec > nowSec) {
      if (!dueForRefresh(cached, nowSec)) return { ...cached, cached: 'hit' };
      void fetchOnce(key, audience, params, via).catch(() => {});
      return { ...cached, cached: 'stale-refresh' };
    }
    const refused = refusals.get(key);
    if (refused !== undefined) {
      if (refused.until > now())
        throw new ExchangeRefusedError(
          refused.oauthError,
          `the token service refused this exchange moments ago: ${refused.oauthError}`,
        );
      refusals.delete(key);
    }
    return { ...(await fetchOnce(key, audience, params, via)), cached: 'miss' };
  }

  /** Single flight per key: concurrent misses and background refreshes share one STS call. */
  function fetchOnce(
    key: string,
    audience: string,
    params: Record<string, string>,
    via: Dispatcher | undefined,
  ): Promise<CachedToken> {
    const pending = inflight.get(key);
    if (pending !== undefined) return pending;
    const call = callSts(key, audience, params, via).finally(() => inflight.delete(key));
    inflight.set(key, call);
    return call;
  }

  async function callSts(
    key: string,
    audience: string,
    params: Record<string, string>,
    via: Dispatcher | undefined,
  ): Promise<CachedToken> {
    if (!breaker.tryAcquire())
      throw new StsUnavailableError(
        'expected the token service to be reachable; the circuit is open after repeated failures',
      );
    let issued: CachedToken;
    try {
      const response = await sts.post(params, via);
      issued = {
        accessToken: response.accessToken,
        expiresAt: Math.floor(now() / 1000) + Math.floor(response.expiresIn),
        scope: response.scope ?? params.scope ?? '',
        issuedTokenType: response.issuedTokenType ?? TokenType.accessToken,
      };
    } catch (error) {
      if (error instanceof StsUnavailableError) {
        // Only an outage (transport failure, timeout, 5xx) counts against the breaker.
        breaker.failure();
        logger.warn({ audience, breaker: breaker.state(), reason: error.message }, 'token service call failed');
      } else {
        // Any answer proves the STS is up: a refusal, a 429, an unusable token are this request's own error.
        breaker.success();
        if (error instanceof ExchangeRefusedError) {
          rememberRefusal(key, error.oauthError ?? 'invalid_request');
          logger.info({ audience, oauthError: error.oauthError }, 'token exchange refused');
        } else {
          logger.warn(
            {
              audience,
              code: (error as { code?: unknown }).code,
              reason: error instanceof Error ? error.message : 'unknown',
            },
            'token service answer unusable',
          );
        }
      }
      throw error;
    }
    breaker.success();
    await cache.set(key, issued);
    return issued;
  }

  function rememberRefusal(key: string, oauthError: string): void {
    if (refusalCacheMs <= 0) return;
    if (refusals.size >= NEGATIVE_CACHE_MAX) {
      const t = now();
      for (const [k, v] of refusals) if (v.until <= t) refusals.delete(k);
      if (refusals.size >= NEGATIVE_CACHE_MAX) refusals.clear();
    }
    refusals.set(key, { until: now() + refusalCacheMs, oauthError });
  }

  return {
    exchange(request) {
      const subjectHash = hash('sha256', request.subjectToken, 'base64url');
      const key = `${keyPrefix}\n${request.binding?.thumbprint ?? ''}\nx\n${subjectHash}\n${request.audience}\n${request.scope ?? ''}`;
      // RFC 8693 §2.1: the request parameters; the actor is the authenticated client, so no actor_token.
      return issue(
        key,
        request.audience,
        () => ({
          grant_type: TOKEN_EXCHANGE_GRANT,
          subject_token: request.subjectToken,
          subject_token_type: request.subjectTokenType,
          audience: request.audience,
          requested_token_type: TokenType.accessToken,
          ...(request.scope === undefined ? {} : { scope: request.scope }),
        }),
        request.binding?.dispatcher,
      );
    },
    serviceToken(request) {
      const key = `${keyPrefix}\n${request.binding?.thumbprint ?? ''}\ncc\n${request.audience}\n${request.scope ?? ''}`;
      return issue(
        key,
        request.audience,
        () => ({
          grant_type: CLIENT_CREDENTIALS_GRANT,
          audience: request.audience,
          ...(request.scope === undefined ? {} : { scope: request.scope }),
        }),
        request.binding?.dispatcher,
      );
    },
    async close() {
      await sts.close();
    },
  } satisfies ExchangeClient;
}
