/**
 * RFC 7662 token introspection, for issuers whose access tokens are opaque.
 * baton authenticates to the introspection endpoint as a client (§2.1),
 * reads `active` strictly, and caches the answer by the token's hash:
 * an active token until its `exp` (capped by `maxCacheSeconds`, so a
 * revocation is seen within that bound), an inactive one briefly, so a
 * flood of made-up tokens cannot turn into a flood of introspection calls.
 *
 * Nothing here fails open: a transport failure, a non-200 answer, a body
 * that is not a JSON object or an `active` that is not exactly `true` is a
 * refusal, never a pass.
 */
import { hash } from 'node:crypto';
import { type Dispatcher, request } from 'undici';
import type { Logger } from 'pino';
import { TokenInactiveError, TokenIntrospectionUnavailableError } from './errors.ts';
import { readBoundedText } from '../core/bounded-text.ts';
import { describe, discoverMetadata, metadataEndpoint, type FetchLimits } from './jwks-fetch.ts';
import { INTROSPECTION_DEFAULTS } from './config.ts';

export type IntrospectionAuthMethod = 'client_secret_basic' | 'client_secret_post';

export interface IntrospectorOptions {
  readonly issuer: string;
  /** Absent: `introspection_endpoint` from the issuer's metadata (RFC 8414 §2, OpenID Connect Discovery). */
  readonly endpoint?: string | undefined;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly authMethod?: IntrospectionAuthMethod;
  readonly cacheMaxEntries?: number;
  /** The longest an active answer is reused, however far off the token's `exp`. */
  readonly maxCacheSeconds?: number;
  /** How long an inactive answer is reused. */
  readonly inactiveCacheSeconds?: number;
  readonly timeoutMs?: number;
  readonly maxBytes?: number;
  readonly dispatcher?: Dispatcher | undefined;
  readonly logger?: Logger;
  /** Milliseconds. */
  readonly now?: () => number;
}

export interface Introspector {
  /** The introspection response of an active token; throws BATON_TOKEN_INACTIVE or BATON_TOKEN_INTROSPECTION_UNAVAILABLE. */
  introspect(token: string): Promise<Readonly<Record<string, unknown>>>;
  /** The longest an active answer may be reused, by this cache or any cache of the verified token. */
  readonly maxCacheSeconds: number;
  readonly size: number;
}

type Answer = { readonly active: true; readonly claims: Readonly<Record<string, unknown>> } | { readonly active: false };
interface Entry {
  readonly answer: Answer;
  readonly until: number;
}

export function createIntrospector(options: IntrospectorOptions): Introspector {
  const { issuer, logger } = options;
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
  const entries = new Map<string, Entry>();
  const inflight = new Map<string, Promise<Answer>>();
  let failing = false;

  async function resolveEndpoint(): Promise<string> {
    if (endpoint !== undefined) return endpoint;
    try {
      endpoint = metadataEndpoint(await discoverMetadata(issuer, limits), 'introspection_endpoint', issuer);
      return endpoint;
    } catch (error) {
      throw new TokenIntrospectionUnavailableError(`expected the introspection endpoint of ${issuer}: ${describe(error)}`, { cause: error });
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
    let body: unknown;
    try {
      const text = await readBoundedText(response.body, limits.maxBytes);
      body = JSON.parse(text);
    } catch (cause) {
      throw unavailable(`POST ${url}: expected a JSON object of at most ${limits.maxBytes} bytes`, cause);
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw unavailable(`POST ${url}: expected a JSON object`);
    const active = (body as { active?: unknown }).active;
    // RFC 7662 §2.2: `active` is REQUIRED and boolean; anything but true is not active.
    if (typeof active !== 'boolean') throw unavailable(`POST ${url}: expected a boolean active member`);
    if (failing) logger?.info({ issuer }, 'token introspection recovered');
    failing = false;
    return active ? { active: true, claims: Object.freeze(body as Record<string, unknown>) } : { active: false };
  }

  function unavailable(message: string, cause?: unknown): Error {
    // Logged once per transition, so a dead endpoint cannot flood the log; the message never holds the token.
    if (!failing) logger?.warn({ issuer, err: { message } }, 'token introspection failed; refusing opaque tokens');
    failing = true;
    return new TokenIntrospectionUnavailableError(`expected an answer from the introspection endpoint of ${issuer}`, cause === undefined ? undefined : { cause });
  }

  function remember(key: string, answer: Answer): void {
    if (max <= 0) return;
    const nowMs = now();
    let until = nowMs + inactiveMs;
    if (answer.active) {
      const exp = answer.claims.exp;
      until = Math.min(nowMs + maxCacheMs, typeof exp === 'number' ? exp * 1000 : nowMs);
    }
    if (until <= nowMs) return;
    entries.delete(key);
    entries.set(key, { answer, until });
    while (entries.size > max) {
      const oldest = entries.keys().next().value;
      if (oldest === undefined) break;
      entries.delete(oldest);
    }
  }

  function lookup(key: string): Answer | undefined {
    const entry = entries.get(key);
    if (entry === undefined) return undefined;
    entries.delete(key);
    if (entry.until <= now()) return undefined;
    entries.set(key, entry);
    return entry.answer;
  }

  return {
    async introspect(token) {
      const key = hash('sha256', token, 'hex');
      let answer = lookup(key);
      if (answer === undefined) {
        // Single flight: concurrent requests with one token share one call.
        let pending = inflight.get(key);
        if (pending === undefined) {
          pending = call(token).finally(() => inflight.delete(key));
          inflight.set(key, pending);
          answer = await pending;
          remember(key, answer);
        } else {
          answer = await pending;
        }
      }
      if (!answer.active) throw new TokenInactiveError('expected an active token, the issuer says it is not (RFC 7662 §2.2)');
      return answer.claims;
    },
    maxCacheSeconds,
    get size() {
      return entries.size;
    },
  };
}

function formEncode(value: string): string {
  return encodeURIComponent(value).replace(/%20/g, '+');
}
