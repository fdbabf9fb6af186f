/**
 * Where a verifier gets an issuer's public keys. The remote source keeps
 * a last-known-good local key set (jose's createRemoteJWKSet alone fails
 * closed once its cache ages out): an unreachable JWKS endpoint costs
 * nothing until `maxStaleMs`, and a flood of tokens with made-up `kid`s
 * causes at most one refetch per cooldown.
 */
import type { KeyObject, webcrypto } from 'node:crypto';
import { createLocalJWKSet, type FlattenedJWSInput, type JSONWebKeySet, type JWSHeaderParameters } from 'jose';
import type { Dispatcher } from 'undici';
import type { Logger } from 'pino';
import { TokenIssuerUnavailableError, TokenUnknownKidError } from './errors.ts';
import { describe, discoverJwksUri, type FetchLimits, fetchJson, validateJwks } from './jwks-fetch.ts';
import { KEY_SOURCE_DEFAULTS } from './config.ts';

export type VerificationKey = webcrypto.CryptoKey | KeyObject;

export interface KeySource {
  /** Throws BATON_TOKEN_UNKNOWN_KID when no key matches, BATON_TOKEN_ISSUER_UNAVAILABLE (reason `jwks`) when there are no usable keys. */
  readonly getKey: (header: JWSHeaderParameters, token?: FlattenedJWSInput) => Promise<VerificationKey>;
  ready(): boolean;
  /** Why the last fetch failed (the URL and the error), until one succeeds; undefined for keys held locally. */
  lastError?(): string | undefined;
  refresh(): Promise<void>;
  close(): void;
}

export interface LocalKeySource extends KeySource {
  /** Replaces the set, e.g. the STS publishing a rotated key. */
  update(jwks: JSONWebKeySet): void;
}

type LocalSet = ReturnType<typeof createLocalJWKSet>;

export function createLocalKeySource(jwks: JSONWebKeySet): LocalKeySource {
  let set = createLocalJWKSet(validateJwks(jwks));
  return {
    getKey: (header, token) => lookup(set, header, token),
    ready: () => true,
    refresh: async () => {},
    close: () => {},
    update(next) {
      set = createLocalJWKSet(validateJwks(next));
    },
  };
}

export interface RemoteKeySourceOptions {
  readonly issuer: string;
  readonly jwksUri?: string;
  /** Find jwks_uri through RFC 8414 metadata, then OpenID Connect discovery. */
  readonly discovery?: boolean;
  readonly dispatcher?: Dispatcher;
  /** Minimum gap between refetches triggered by unknown kids. */
  readonly cooldownMs?: number;
  /** How long the last good keys serve while the endpoint is failing. */
  readonly maxStaleMs?: number;
  /** Background refresh period. */
  readonly refreshIntervalMs?: number;
  readonly timeoutMs?: number;
  readonly maxBytes?: number;
  readonly logger?: Logger;
  readonly now?: () => number;
}

export function createRemoteKeySource(options: RemoteKeySourceOptions): KeySource {
  const { issuer, logger } = options;
  if (options.jwksUri === undefined && options.discovery !== true) {
    throw new TypeError(`key source for ${issuer}: expected a jwksUri or discovery: true`);
  }
  const now = options.now ?? Date.now;
  const cooldownMs = options.cooldownMs ?? KEY_SOURCE_DEFAULTS.cooldownMs;
  const maxStaleMs = options.maxStaleMs ?? KEY_SOURCE_DEFAULTS.maxStaleMs;
  const limits: FetchLimits = {
    timeoutMs: options.timeoutMs ?? KEY_SOURCE_DEFAULTS.timeoutMs,
    maxBytes: options.maxBytes ?? 1024 * 1024,
    ...(options.dispatcher === undefined ? {} : { dispatcher: options.dispatcher }),
  };

  let jwksUri = options.jwksUri;
  let current: { set: LocalSet; fetchedAt: number } | undefined;
  let lastAttempt = Number.NEGATIVE_INFINITY;
  let inflight: Promise<void> | undefined;
  let failing = false;
  let lastError: string | undefined;
  let closed = false;

  async function fetchKeys(): Promise<void> {
    lastAttempt = now();
    try {
      jwksUri ??= await discoverJwksUri(issuer, limits);
      const jwks = validateJwks(await fetchJson(jwksUri, limits));
      current = { set: createLocalJWKSet(jwks), fetchedAt: now() };
      if (failing) logger?.info({ issuer }, 'jwks fetch recovered');
      failing = false;
      lastError = undefined;
    } catch (error) {
      lastError = describe(error);
      // Logged once per transition, not per attempt, so a dead endpoint cannot flood the log.
      if (!failing) logger?.warn({ issuer, err: { message: lastError } }, 'jwks fetch failed; keeping last good keys');
      failing = true;
    }
  }

  /** Single flight: every caller during a fetch shares it. */
  function refetch(force: boolean): Promise<void> {
    if (inflight !== undefined) return inflight;
    if (!force && now() - lastAttempt < cooldownMs) return Promise.resolve();
    inflight = fetchKeys().finally(() => {
      inflight = undefined;
    });
    return inflight;
  }

  async function usableSet(): Promise<LocalSet> {
    if (current === undefined || now() - current.fetchedAt > maxStaleMs) await refetch(false);
    if (current === undefined)
      throw new TokenIssuerUnavailableError(`expected signing keys for ${issuer}, but none could be fetched`, {
        reason: 'jwks',
      });
    if (now() - current.fetchedAt > maxStaleMs) {
      throw new TokenIssuerUnavailableError(
        `expected signing keys for ${issuer} fetched within ${maxStaleMs} ms, the last good ones are older`,
        { reason: 'jwks' },
      );
    }
    return current.set;
  }

  const timer = setInterval(
    () => void refetch(true),
    options.refreshIntervalMs ?? KEY_SOURCE_DEFAULTS.refreshIntervalMs,
  );
  timer.unref();
  void refetch(true);

  return {
    async getKey(header, token) {
      const set = await usableSet();
      try {
        return await lookup(set, header, token);
      } catch (error) {
        if (!(error instanceof TokenUnknownKidError) || closed) throw error;
      }
      // A kid we have not seen may be a freshly rotated key: refetch, within the cooldown.
      const before = current;
      await refetch(false);
      if (current === undefined || current === before)
        throw new TokenUnknownKidError(`expected a kid published by ${issuer}`);
      return await lookup(current.set, header, token);
    },
    ready: () => current !== undefined && now() - current.fetchedAt <= maxStaleMs,
    lastError: () => lastError,
    refresh: () => refetch(true),
    close() {
      closed = true;
      clearInterval(timer);
    },
  };
}

async function lookup(
  set: LocalSet,
  header: JWSHeaderParameters,
  token: FlattenedJWSInput | undefined,
): Promise<VerificationKey> {
  try {
    return await set(header, token);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'ERR_JWKS_NO_MATCHING_KEY')
      throw new TokenUnknownKidError('expected a kid naming a published key for this alg');
    // Several keys match a token without a kid; trying each would let one token cost N verifications.
    if (code === 'ERR_JWKS_MULTIPLE_MATCHING_KEYS')
      throw new TokenUnknownKidError('expected a kid selecting exactly one key');
    throw error;
  }
}
