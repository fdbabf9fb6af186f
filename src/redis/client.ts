/**
 * One Redis connection that degrades instead of failing: the shared
 * mechanics of the sidecar's token tier and the STS's replay set. Redis is
 * an optimisation for both, so a fault never reaches a caller: no offline
 * queue, no retries per request, short timeouts, and a state that the hot
 * path reads synchronously (`usable()`).
 *
 * Faults are told apart because an operator fixes them differently: the
 * server is gone (`unavailable`), our ACL user or its password is wrong
 * (`auth`), or the user lacks a command or key (`noperm`). Each is logged
 * and counted once, when the state changes, never per request. A refused
 * command (NOPERM) will be refused again, so the client stops sending for
 * `REFUSED_BACKOFF_MS` instead of paying a round trip per request.
 *
 * Every user shares these timings; only the command timeout differs by
 * what a miss costs (a token cache or a replay set), and comes from the
 * user's config (src/redis/config.ts).
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { ConfigError } from '../config/config-error.ts';
import type { Logger } from 'pino';

export type RedisFault = 'unavailable' | 'auth' | 'noperm';

/** How long a (re)connection may take. Commands never wait for it: with no offline queue, they fail at once while it runs. */
const CONNECT_TIMEOUT_MS = 1_000;
/** How long a refused user (NOPERM, a wrong password) sends nothing before trying again. */
const REFUSED_BACKOFF_MS = 30_000;
/** Reconnect delays: 200 ms more per attempt, at most 2 s. */
const RECONNECT_STEP_MS = 200;
const RECONNECT_MAX_MS = 2_000;

export interface RedisCredentials {
  readonly username: string;
  /** Read at start and again before every reconnect, so a rotated Secret is picked up without a restart. */
  readonly passwordFile: string;
}

/** ioredis's client class, from `loadRedis()`. */
export type RedisClass = typeof Redis;

/**
 * Loads ioredis: only a process whose configuration names Redis pays for it
 * (#28: a sidecar without Redis never loads its code, a few MB of RSS).
 */
export async function loadRedis(): Promise<RedisClass> {
  return (await import('ioredis')).Redis;
}

export interface DegradingRedisOptions {
  /** The client class, from `loadRedis()`. */
  readonly Redis: RedisClass;
  readonly url: string;
  readonly credentials: RedisCredentials;
  /** From the user's config: how long one command may take before it counts as failed. */
  readonly commandTimeoutMs: number;
  readonly logger: Logger;
  /** What this connection is for, in log lines: `token cache`, `replay store`. */
  readonly purpose: string;
  /** Called once per transition: `available`, or the fault that ended availability. */
  readonly onState?: (state: 'available' | RedisFault) => void;
  readonly now?: () => number;
}

export interface DegradingRedis {
  readonly client: Redis;
  /** Whether a command is worth sending now. */
  usable(): boolean;
  /** Report a command that failed; classifies it and changes state when it must. */
  failed(error: unknown): void;
  /** Report a command that succeeded (after a refusal, this is how recovery shows). */
  succeeded(): void;
  close(): void;
}

export function createDegradingRedis(options: DegradingRedisOptions): DegradingRedis {
  const now = options.now ?? Date.now;
  const { logger, purpose } = options;
  const readPassword = (): string => readPasswordFile(options.credentials.passwordFile);
  const client = new options.Redis(options.url, {
    username: options.credentials.username,
    password: readPassword(),
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: options.commandTimeoutMs,
    connectTimeout: CONNECT_TIMEOUT_MS,
    enableAutoPipelining: true,
    // The ACL user may run only what baton needs (docs/security.md): no INFO
    // for a ready check, no CLIENT SETINFO. Neither is needed to GET and SET.
    enableReadyCheck: false,
    disableClientInfo: true,
    retryStrategy: (attempt) => Math.min(attempt * RECONNECT_STEP_MS, RECONNECT_MAX_MS),
  });

  let state: 'connecting' | 'available' | RedisFault = 'connecting';
  let refusedUntil = 0;
  const transition = (next: 'available' | RedisFault, reason?: string): void => {
    if (state === next) return;
    // A refused AUTH makes ioredis drop the connection and retry: the socket
    // errors that follow are that retry loop, not a second fault to log.
    if (state === 'auth' && next === 'unavailable') return;
    state = next;
    if (next === 'available') logger.info({ event: 'redis_available', redis: purpose }, `redis ${purpose} available`);
    else
      logger.warn(
        { event: 'redis_unavailable', redis: purpose, fault: next, reason },
        `redis ${purpose} unavailable (${next}); degrading`,
      );
    options.onState?.(next);
  };

  client.on('ready', () => {
    refusedUntil = 0;
    transition('available');
  });
  client.on('error', (error: Error) => transition(classify(error), reasonOf(error)));
  client.on('end', () => transition('unavailable', 'connection ended'));
  client.on('reconnecting', () => {
    // A rotated password file takes effect at the next connection.
    try {
      client.options.password = readPassword();
    } catch (error) {
      transition('auth', (error as ConfigError).expected);
    }
  });
  client.connect().catch(() => {});

  return {
    client,
    usable: () => client.status === 'ready' && (refusedUntil === 0 || now() >= refusedUntil),
    failed(error) {
      const fault = classify(error);
      if (fault === 'noperm' || fault === 'auth') refusedUntil = now() + REFUSED_BACKOFF_MS;
      transition(fault, reasonOf(error));
    },
    succeeded() {
      // Only a refusal ends this way; a lost server comes back through 'ready'
      // (a flapping one must not log every other request).
      if (state !== 'noperm' && state !== 'auth') return;
      refusedUntil = 0;
      transition('available');
    },
    close() {
      client.disconnect();
    },
  };
}

export function readPasswordFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(
      file,
      'redis.passwordFile',
      'a readable file holding the Redis ACL password',
      (error as NodeJS.ErrnoException).code ?? 'an unreadable file',
    );
  }
  // Secrets written by `echo` or editors end in a newline; Redis passwords never do.
  const password = text.replace(/\r?\n$/, '');
  if (password.length === 0 || /[\s]/.test(password)) {
    throw new ConfigError(
      file,
      'redis.passwordFile',
      'one password without whitespace',
      password.length === 0 ? 'an empty file' : 'whitespace (not shown: secret)',
    );
  }
  return password;
}

function classify(error: unknown): RedisFault {
  const message = error instanceof Error ? error.message : '';
  if (message.startsWith('NOPERM')) return 'noperm';
  if (message.startsWith('WRONGPASS') || message.startsWith('NOAUTH')) return 'auth';
  return 'unavailable';
}

/** A short, secret-free reason: the Redis error code or the socket error code. */
function reasonOf(error: unknown): string {
  if (!(error instanceof Error)) return 'unknown';
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  const first = /^[A-Z]+/.exec(error.message)?.[0];
  return first ?? error.name;
}
