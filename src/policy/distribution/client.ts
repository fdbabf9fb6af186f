/**
 * The policy client inside every sidecar and the STS: long-polls the policy
 * server, verifies what it gets, and keeps the last good policy through
 * anything else — network errors, 5xx, garbage, a bad signature, an older
 * version (a rollback an attacker or a misconfigured server could serve).
 * Never fails open: until a first good policy arrives the part is not ready.
 */
import type { KeyObject } from 'node:crypto';
import { type Dispatcher, request } from 'undici';
import type { Logger } from 'pino';
import { BodyTooLargeError, readBoundedText } from '../../core/bounded-text.ts';
import { InternalError, isBatonError } from '../../core/errors.ts';
import { compilePolicy } from '../language/compile.ts';
import { formatProblem, PolicyInvalidError } from '../language/errors.ts';
import { policyFromJSON } from '../language/parse.ts';
import { CALLGRAPH_PATH, importPolicyVerificationKey, POLICY_MEDIA_TYPE, verifyPolicy } from './signing.ts';
import { createPolicyStateFile, type PolicyState } from './policy-state.ts';
import { createFilePolicySource, createPolicyHolder, type PolicySource } from './source.ts';
import { POLICY_CLIENT_DEFAULTS, type PolicySourceConfig } from './config.ts';
import { PolicyDocumentMalformedError, PolicyServerUnavailableError, PolicyStaleError } from './errors.ts';

export interface PolicyClientOptions {
  /** The policy server's base URL (`http://policy:7100`) or the full `/v1/callgraph` URL. */
  readonly url: string;
  /** The key policies must be signed with: SPKI PEM text, the path of a PEM file, or a KeyObject. */
  readonly publicKey: string | KeyObject;
  readonly logger: Logger;
  readonly dispatcher?: Dispatcher;
  /** ms since the epoch. */
  readonly now?: () => number;
  /** Retry delays after a failure: exponential from min to max, with jitter. Defaults: POLICY_CLIENT_DEFAULTS (./config.ts). */
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** How long the server may hold each long-poll (the server caps it at its maxWaitSeconds). */
  readonly waitSeconds?: number;
  /** Largest signed document accepted. Default 4 MiB. */
  readonly maxBytes?: number;
  /**
   * Refuse a document whose `issuedAt` is older than this (a replay of a
   * policy signed long ago, which may allow an edge removed since). The
   * policy server re-signs the current version well within it.
   */
  readonly maxAgeSeconds?: number;
  /** A file that keeps the last version seen across restarts (./policy-state.ts). */
  readonly stateFile?: string;
}

export interface PolicyClient extends PolicySource {
  /** Why the last fetch failed, if it did; cleared by the next success. */
  lastError(): { readonly code: string; readonly reason?: string | undefined; readonly message: string } | undefined;
}

export function createPolicyClient(options: PolicyClientOptions): PolicyClient {
  const { logger } = options;
  // Fail at construction, not on the first fetch: a wrong key is a config error.
  const key = importPolicyVerificationKey(options.publicKey);
  const endpoint = callgraphUrl(options.url);
  const now = options.now ?? Date.now;
  const minBackoffMs = options.minBackoffMs ?? POLICY_CLIENT_DEFAULTS.minBackoffMs;
  const maxBackoffMs = Math.max(options.maxBackoffMs ?? POLICY_CLIENT_DEFAULTS.maxBackoffMs, minBackoffMs);
  const waitSeconds = options.waitSeconds ?? POLICY_CLIENT_DEFAULTS.waitSeconds;
  const maxBytes = options.maxBytes ?? 4 * 1024 * 1024;
  const holder = createPolicyHolder(logger);
  const state = options.stateFile === undefined ? undefined : createPolicyStateFile(options.stateFile, logger);
  // The newest document seen, by this process or (through the state file) an earlier one: nothing older is accepted.
  let seen: PolicyState | undefined = state?.read();
  const closing = new AbortController();
  let etag: string | undefined;
  let failures = 0;
  let lastError: { code: string; reason?: string | undefined; message: string } | undefined;
  let lastProblem = '';
  let loop: Promise<void> | undefined;

  /** One request: resolves when it ended well (new policy or 304), throws otherwise. */
  const poll = async (): Promise<'updated' | 'not-modified'> => {
    const headers: Record<string, string> = { accept: POLICY_MEDIA_TYPE };
    if (etag !== undefined) headers['if-none-match'] = etag;
    let response: Dispatcher.ResponseData;
    try {
      response = await request(`${endpoint}?wait=${waitSeconds}`, {
        method: 'GET',
        headers,
        signal: closing.signal,
        headersTimeout: (waitSeconds + 10) * 1000,
        bodyTimeout: 10_000,
        ...(options.dispatcher === undefined ? {} : { dispatcher: options.dispatcher }),
      });
    } catch (error) {
      throw new PolicyServerUnavailableError(
        `expected an answer from ${endpoint}, got ${describeNetworkError(error)}`,
        { cause: error, reason: networkCode(error) },
      );
    }
    if (response.statusCode === 304) {
      await response.body.dump();
      return 'not-modified';
    }
    if (response.statusCode !== 200) {
      await response.body.dump();
      throw new PolicyServerUnavailableError(`expected 200 or 304 from ${endpoint}, got ${response.statusCode}`);
    }
    const servedEtag = typeof response.headers.etag === 'string' ? response.headers.etag : undefined;
    const body = await readLimited(response.body, maxBytes);
    // Whatever happens next, do not ask for this same representation again at once.
    if (servedEtag !== undefined) etag = servedEtag;
    const { payload } = await verifyPolicy(body, key);
    const ageSeconds = now() / 1000 - payload.issuedAt;
    // A document from the future would outlive any maximum age; one minute of clock skew is allowed.
    if (options.maxAgeSeconds !== undefined && (ageSeconds > options.maxAgeSeconds || ageSeconds < -60)) {
      throw new PolicyStaleError(
        `expected a policy issued within the last ${options.maxAgeSeconds} s, got one issued ${Math.round(ageSeconds)} s ago (version ${payload.version})`,
        { reason: 'age' },
      );
    }
    if (
      seen !== undefined &&
      payload.version === seen.version &&
      payload.digest === seen.digest &&
      payload.issuedAt >= seen.issuedAt
    ) {
      // The same version re-signed: only its age is new. Nothing to compile or announce.
      remember({ version: payload.version, digest: payload.digest, issuedAt: payload.issuedAt });
      if (holder.current() !== undefined) return 'not-modified';
    } else if (seen !== undefined && payload.version <= seen.version) {
      throw new PolicyStaleError(`expected a version above ${seen.version}, got ${payload.version}`, {
        reason: 'version',
      });
    }
    const compiled = compilePolicy(policyFromJSON(payload.policy));
    if (compiled.digest !== payload.digest) {
      throw new PolicyDocumentMalformedError(
        `expected the signed digest ${payload.digest} to match the policy's own, got ${compiled.digest}`,
        { reason: 'digest' },
      );
    }
    remember({ version: payload.version, digest: payload.digest, issuedAt: payload.issuedAt });
    holder.accept(compiled, payload.version, { ageSeconds: Math.max(0, Math.round(now() / 1000 - payload.issuedAt)) });
    return 'updated';
  };

  const remember = (next: PolicyState): void => {
    seen = next;
    state?.write(next);
  };

  const run = async (): Promise<void> => {
    while (!closing.signal.aborted) {
      try {
        const started = Date.now();
        const outcome = await poll();
        failures = 0;
        lastError = undefined;
        // A 304 that was not held (a proxy or server without long polling) must not become a busy loop.
        if (outcome === 'not-modified' && Date.now() - started < 100) await sleep(minBackoffMs, closing.signal);
      } catch (error) {
        if (closing.signal.aborted) return;
        failures += 1;
        report(error);
        await sleep(backoff(failures, minBackoffMs, maxBackoffMs), closing.signal);
      }
    }
  };

  const report = (error: unknown): void => {
    // Every failure of a fetch is classified where it happens; anything else is a bug, and its message stays in the log.
    lastError = {
      code: isBatonError(error) ? error.code : InternalError.code,
      reason: isBatonError(error) ? error.reason : undefined,
      message: error instanceof Error ? error.message : String(error),
    };
    const problems =
      error instanceof PolicyInvalidError
        ? error.problems.filter((p) => p.severity === 'error').map(formatProblem)
        : undefined;
    lastProblem = `${lastError.code}${lastError.reason === undefined ? '' : ` (${lastError.reason})`}: ${problems?.[0] ?? lastError.message}`;
    const unavailable = error instanceof PolicyServerUnavailableError;
    logger[unavailable ? 'warn' : 'error'](
      {
        code: lastError.code,
        reason: lastError.reason,
        err: lastError.message,
        problems,
        failures,
        version: holder.version(),
        digest: holder.current()?.digest,
      },
      unavailable
        ? holder.current() === undefined
          ? 'policy server unavailable; no policy yet, not ready'
          : 'policy server unavailable; keeping the last good policy'
        : 'policy refused; keeping the last good policy',
    );
  };

  return {
    current: holder.current,
    version: holder.version,
    snapshot: holder.snapshot,
    ready: () => !closing.signal.aborted && holder.current() !== undefined,
    onUpdate: holder.onUpdate,
    waitUntilReady: holder.waitUntilReady,
    lastError: () => lastError,
    problem: () => (lastError === undefined ? undefined : lastProblem),
    async start() {
      loop ??= run();
      await holder.firstPolicy();
    },
    async close() {
      closing.abort();
      holder.cancel();
      await loop;
    },
  };
}

function callgraphUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    throw new TypeError(`expected an http(s) policy server URL, got ${parsed.protocol}`);
  if (!parsed.pathname.endsWith(CALLGRAPH_PATH)) parsed.pathname = parsed.pathname.replace(/\/$/, '') + CALLGRAPH_PATH;
  parsed.search = '';
  return parsed.toString();
}

/** Full jitter over the upper half, so a fleet of sidecars does not retry in step after a server restart. */
function backoff(failures: number, minMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(failures - 1, 30));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

async function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** The signed policy, read within its bound: a larger document is malformed, whatever it holds. */
async function readLimited(body: Dispatcher.ResponseData['body'], maxBytes: number): Promise<string> {
  try {
    return await readBoundedText(body, maxBytes);
  } catch (error) {
    if (error instanceof BodyTooLargeError)
      throw new PolicyDocumentMalformedError(`expected a signed policy of at most ${maxBytes} bytes, got more`);
    // The answer broke off (a reset, a body timeout): the server did not answer, and node's code says how.
    throw new PolicyServerUnavailableError(`expected the whole answer, got ${describeNetworkError(error)}`, {
      cause: error,
      reason: networkCode(error),
    });
  }
}

function describeNetworkError(error: unknown): string {
  return networkCode(error) ?? (error instanceof Error ? error.name : 'a network error');
}

/** node's or undici's code for a request that failed (`ECONNREFUSED`, `UND_ERR_SOCKET`): the reason the server is unavailable. */
function networkCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** A part's `policy` block (the sidecar's, the STS's, `baton authz`'s): one source, a file or a policy server. */
export interface PolicySourceSettings extends Omit<PolicySourceConfig, 'publicKey'> {
  readonly maxAgeSeconds: number;
  readonly waitSeconds: number;
  readonly stateFile?: string | undefined;
}

/**
 * The policy a part follows: the file when one is named, else the policy
 * server at `url` with documents signed by `publicKey` (PEM text or its
 * file). The part's config check has made sure of exactly one source.
 */
export function policySourceFor(
  policy: PolicySourceSettings,
  publicKey: string | undefined,
  deps: { logger: Logger; dispatcher?: Dispatcher | undefined },
): PolicySource {
  const { logger, dispatcher } = deps;
  if (policy.file !== undefined) return createFilePolicySource(policy.file, { logger });
  return createPolicyClient({
    url: policy.url as string,
    publicKey: publicKey as string,
    logger,
    maxAgeSeconds: policy.maxAgeSeconds,
    waitSeconds: policy.waitSeconds,
    minBackoffMs: policy.minBackoffMs,
    maxBackoffMs: policy.maxBackoffMs,
    ...(policy.stateFile === undefined ? {} : { stateFile: policy.stateFile }),
    ...(dispatcher === undefined ? {} : { dispatcher }),
  });
}
