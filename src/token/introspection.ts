/**
 * RFC 7662 token introspection, for issuers whose access tokens are opaque.
 * baton authenticates to the introspection endpoint as a client (§2.1),
 * reads the answer strictly, and caches it by the token's hash: an active
 * token until its `exp` (reused without asking for `maxCacheSeconds` at
 * most, so a revocation is seen within that bound), an inactive one briefly.
 *
 * A flood of made-up tokens cannot turn into a flood of introspection calls
 * (issue #23):
 *
 * - a token this issuer has not called active before costs one unit of a
 *   budget of `maxCallsPerSecond`; with the budget spent it is refused at
 *   once (503 BATON_TOKEN_INTROSPECTION_THROTTLED, Retry-After), never
 *   passed and never sent;
 * - a token the issuer called active is asked again, once its answer may no
 *   longer be reused, without spending the budget: a flood cannot lock out
 *   users already known. Such calls are bounded by the cache's size per
 *   `maxCacheSeconds`, and entering the cache takes a real token;
 * - concurrent requests with one token share one call (single flight);
 * - inactive answers are kept apart from active ones, in a cache of their
 *   own, so made-up tokens never evict a known user's answer.
 *
 * Nothing here fails open: a transport failure, a non-200 answer, a body
 * that is not one JSON object with unique member names, or an `active` that
 * is not exactly `true` is a refusal, never a pass.
 */
import { hash } from 'node:crypto';
import { type Dispatcher, request } from 'undici';
import type { Logger } from 'pino';
import {
  TokenInactiveError,
  TokenIntrospectionThrottledError,
  TokenIssuerUnavailableError,
  TokenUntrustedIssuerError,
} from './errors.ts';
import { parseJsonObject } from './strict-json.ts';
import { createRateBudget } from '../core/rate-budget.ts';
import { readBoundedText } from '../core/bounded-text.ts';
import { describe, discoverMetadata, metadataEndpoint, type FetchLimits } from './jwks-fetch.ts';
import { INTROSPECTION_DEFAULTS } from './config.ts';

export type IntrospectionAuthMethod = 'client_secret_basic' | 'client_secret_post';

export interface IntrospectorOptions {
  readonly issuer: string;
  /** Absent: `introspection_endpoint` from the issuer's metadata (RFC 8414 §2, OpenID Connect Discovery). */
  readonly endpoint?: string | undefined;
  /** Only tokens that start with this are sent (src/token/opaque-routing.ts); any other is refused, never sent. */
  readonly tokenPrefix?: string | undefined;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly authMethod?: IntrospectionAuthMethod;
  readonly cacheMaxEntries?: number;
  /** The longest an active answer is reused, however far off the token's `exp`. */
  readonly maxCacheSeconds?: number;
  /** How long an inactive answer is reused. */
  readonly inactiveCacheSeconds?: number;
  /** Calls per second for tokens this issuer has not called active before; past it they are refused (503). */
  readonly maxCallsPerSecond?: number;
  readonly timeoutMs?: number;
  readonly maxBytes?: number;
  readonly dispatcher?: Dispatcher | undefined;
  readonly logger?: Logger;
  /** Milliseconds. */
  readonly now?: () => number;
}

export interface Introspector {
  /** The introspection response of an active token; throws BATON_TOKEN_INACTIVE, BATON_TOKEN_INTROSPECTION_THROTTLED or BATON_TOKEN_ISSUER_UNAVAILABLE (reason `introspection`). */
  introspect(token: string): Promise<Readonly<Record<string, unknown>>>;
  /** The start of every token of this issuer, when set: the verifier routes opaque tokens by it. */
  readonly tokenPrefix: string | undefined;
  /** The longest an active answer may be reused, by this cache or any cache of the verified token. */
  readonly maxCacheSeconds: number;
  /** Answers kept, active and inactive. */
  readonly size: number;
}

type Answer =
  { readonly active: true; readonly claims: Readonly<Record<string, unknown>> } | { readonly active: false };
interface Known {
  readonly claims: Readonly<Record<string, unknown>>;
  /** Until then the answer is reused without asking; epoch milliseconds. */
  readonly reuseUntil: number;
  /** The token's exp: until then it is a token the issuer called active, asked again without spending the budget. */
  readonly knownUntil: number;
}

export function createIntrospector(options: IntrospectorOptions): Introspector {
  const { issuer, logger, tokenPrefix } = options;
  const now = options.now ?? Date.now;
  const max = options.cacheMaxEntries ?? INTROSPECTION_DEFAULTS.cacheMaxEntries;
  const maxCacheSeconds = options.maxCacheSeconds ?? INTROSPECTION_DEFAULTS.maxCacheSeconds;
  const maxCacheMs = maxCacheSeconds * 1000;
  const inactiveMs = (options.inactiveCacheSeconds ?? INTROSPECTION_DEFAULTS.inactiveCacheSeconds) * 1000;
  const limits: FetchLimits = {
    timeoutMs: options.timeoutMs ?? INTROSPECTION_DEFAULTS.timeoutMs,
    maxBytes: options.maxBytes ?? 64 * 1024,
    ...(options.dispatcher === undefined ? {} : { dispatcher: options.dispatcher }),
  };
  const authMethod = options.authMethod ?? INTROSPECTION_DEFAULTS.authMethod;
  // RFC 6749 §2.3.1: the Basic credentials are the form-encoded id and secret.
  const basic = `Basic ${Buffer.from(`${formEncode(options.clientId)}:${formEncode(options.clientSecret)}`).toString('base64')}`;
  let endpoint = options.endpoint;
  // Both bounded by cacheMaxEntries, least recently used first; apart, so made-up tokens never evict a known one.
  const known = new Map<string, Known>();
  const refused = new Map<string, number>();
  const inflight = new Map<string, Promise<Answer>>();
  const maxCallsPerSecond = options.maxCallsPerSecond ?? INTROSPECTION_DEFAULTS.maxCallsPerSecond;
  const budget = createRateBudget({ perSecond: maxCallsPerSecond, now });
  let failing = false;
  let throttling = false;

  async function resolveEndpoint(): Promise<string> {
    if (endpoint !== undefined) return endpoint;
    try {
      endpoint = metadataEndpoint(await discoverMetadata(issuer, limits), 'introspection_endpoint', issuer);
      return endpoint;
    } catch (error) {
      throw new TokenIssuerUnavailableError(`expected the introspection endpoint of ${issuer}: ${describe(error)}`, {
        cause: error,
        reason: 'introspection',
      });
    }
  }

  async function call(token: string): Promise<Answer> {
    const url = await resolveEndpoint();
    const form = new URLSearchParams({ token, token_type_hint: 'access_token' });
    if (authMethod === 'client_secret_post') {
      form.set('client_id', options.clientId);
      form.set('client_secret', options.clientSecret);
    }
    let response: Dispatcher.ResponseData;
    try {
      response = await request(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
          ...(authMethod === 'client_secret_basic' ? { authorization: basic } : {}),
        },
        body: form.toString(),
        signal: AbortSignal.timeout(limits.timeoutMs),
        headersTimeout: limits.timeoutMs,
        bodyTimeout: limits.timeoutMs,
        ...(limits.dispatcher === undefined ? {} : { dispatcher: limits.dispatcher }),
      });
    } catch (cause) {
      throw unavailable(`POST ${url} failed: ${describe(cause)}`, cause);
    }
    if (response.statusCode !== 200) {
      response.body.resume();
      // 401 here means baton's own credentials are wrong: the operator's problem, never the caller's token.
      throw unavailable(`POST ${url}: expected status 200, got ${response.statusCode}`);
    }
    let text: string;
    try {
      text = await readBoundedText(response.body, limits.maxBytes);
    } catch (cause) {
      throw unavailable(`POST ${url}: expected a body of at most ${limits.maxBytes} bytes`, cause);
    }
    // RFC 8259 §4: with duplicate names a parser may keep either value; `{"active":false,"active":true}` must not read as active.
    const parsed = parseJsonObject(text);
    if (!parsed.ok)
      throw unavailable(
        `POST ${url}: expected one JSON object with unique member names, got ${parsed.reason === 'duplicate-member' ? 'a duplicate member' : parsed.reason === 'syntax' ? 'invalid JSON' : 'another JSON value'}`,
      );
    const body = parsed.value;
    const active = body.active;
    // RFC 7662 §2.2: `active` is REQUIRED and boolean; anything but true is not active.
    if (typeof active !== 'boolean') throw unavailable(`POST ${url}: expected a boolean active member`);
    if (failing) logger?.info({ issuer }, 'token introspection recovered');
    failing = false;
    return active ? { active: true, claims: Object.freeze(body) } : { active: false };
  }

  function unavailable(message: string, cause?: unknown): Error {
    // Logged once per transition, so a dead endpoint cannot flood the log; the message never holds the token.
    if (!failing) logger?.warn({ issuer, err: { message } }, 'token introspection failed; refusing opaque tokens');
    failing = true;
    return new TokenIssuerUnavailableError(`expected an answer from the introspection endpoint of ${issuer}`, {
      cause,
      reason: 'introspection',
    });
  }

  function remember(key: string, answer: Answer): void {
    const nowMs = now();
    if (!answer.active) {
      known.delete(key);
      if (inactiveMs > 0) bounded(refused, key, nowMs + inactiveMs);
      return;
    }
    refused.delete(key);
    const exp = answer.claims.exp;
    const knownUntil = typeof exp === 'number' ? exp * 1000 : nowMs;
    if (knownUntil <= nowMs) {
      known.delete(key);
      return;
    }
    bounded(known, key, { claims: answer.claims, reuseUntil: Math.min(nowMs + maxCacheMs, knownUntil), knownUntil });
  }

  function bounded<V>(map: Map<string, V>, key: string, value: V): void {
    map.delete(key);
    map.set(key, value);
    while (map.size > max) map.delete(map.keys().next().value as string);
  }

  function throttled(): Error {
    // Logged once per spell, so a flood cannot flood the log either.
    if (!throttling)
      logger?.warn(
        { event: 'introspection_throttled', issuer },
        'introspection budget spent; refusing opaque tokens this issuer has not called active before',
      );
    throttling = true;
    return new TokenIntrospectionThrottledError(
      `expected at most ${maxCallsPerSecond} introspection calls per second for new tokens at ${issuer}, the budget is spent`,
      { extensions: { retryAfter: budget.retryAfterSeconds() } },
    );
  }

  return {
    async introspect(token) {
      // The verifier routes by prefix already; this endpoint still never sees a token that is not its issuer's.
      if (tokenPrefix !== undefined && !token.startsWith(tokenPrefix))
        throw new TokenUntrustedIssuerError(`expected a token that starts with ${issuer}'s tokenPrefix`);
      const key = hash('sha256', token, 'hex');
      const nowMs = now();
      let seen = known.get(key);
      if (seen !== undefined) {
        // Most recently used last: the bound drops the least recently used.
        known.delete(key);
        if (nowMs < seen.knownUntil) known.set(key, seen);
        else seen = undefined;
        if (seen !== undefined && nowMs < seen.reuseUntil) return seen.claims;
      }
      const refusedUntil = refused.get(key);
      if (refusedUntil !== undefined) {
        if (nowMs < refusedUntil) throw inactive();
        refused.delete(key);
      }
      // Single flight: concurrent requests with one token share one call, and one unit of the budget.
      let pending = inflight.get(key);
      if (pending === undefined) {
        // A token the issuer has not called active costs the budget; one it has is asked again regardless.
        if (seen === undefined) {
          if (!budget.take()) throw throttled();
          throttling = false;
        }
        pending = call(token).finally(() => inflight.delete(key));
        inflight.set(key, pending);
        const answer = await pending;
        remember(key, answer);
        if (!answer.active) throw inactive();
        return answer.claims;
      }
      const answer = await pending;
      if (!answer.active) throw inactive();
      return answer.claims;
    },
    maxCacheSeconds,
    tokenPrefix,
    get size() {
      return known.size + refused.size;
    },
  };
}

function inactive(): Error {
  return new TokenInactiveError('expected an active token, the issuer says it is not (RFC 7662 §2.2)');
}

function formEncode(value: string): string {
  return encodeURIComponent(value).replace(/%20/g, '+');
}
