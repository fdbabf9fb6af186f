/**
 * The policy server: serves the current call-graph policy as a signed,
 * versioned JWS at `GET /v1/callgraph`, with a strong `ETag`, conditional
 * requests (`If-None-Match` → 304, RFC 9110 §13.1.2) and long polling
 * (`?wait=SECONDS`) so sidecars learn of a new version within moments
 * without asking every second.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type RawReplyDefaultExpression, type RawRequestDefaultExpression, type RawServerDefault } from 'fastify';
import { BadRequestError, NotReadyError, OverloadedError } from '../../core/errors.ts';
import { fastifyProblems, sendProblem } from '../../core/fastify-problems.ts';
import { secureContextOptions, servedUrl } from '../../identity/tls.ts';
import { createPlainListener, createTlsListener, type GuardedListener } from '../../identity/tls-server.ts';
import type { MeshIdentity } from '../../identity/transport.ts';
import type { Logger } from 'pino';
import { policyToJSON } from '../language/parse.ts';
import { DEFAULT_REISSUE_SECONDS, MAX_WAIT_SECONDS } from './config.ts';
import { CALLGRAPH_PATH, type PolicySigningKey, POLICY_MEDIA_TYPE, signPolicy } from './signing.ts';

import type { LoadedPolicy } from '../language/load.ts';
import type { PolicyWatcher } from './watch.ts';
import { PROMETHEUS_CONTENT_TYPE, renderFamily } from '../../telemetry/prometheus-text.ts';
import { createRuntimeMetrics } from '../../telemetry/runtime-metrics.ts';



/** One signed version, ready to send as-is to every client. */
export interface PublishedPolicy {
  readonly version: number;
  readonly digest: string;
  readonly etag: string;
  readonly jws: string;
  /** The signed policy's JSON form, kept to re-sign it with a fresh issuedAt. */
  readonly policy: unknown;
  /** Epoch seconds in the signed payload. */
  readonly issuedAt: number;
}

export interface VersionCounter {
  /** The next version; strictly greater than every earlier one, across restarts too. */
  next(): number;
}

/**
 * Versions are `max(previous + 1, now in epoch seconds)`. With a state file
 * the previous version survives restarts, so versions never go backwards
 * even if the clock does; without one, the clock alone keeps a restarted
 * server ahead of what it served before, as long as it did not publish more
 * than one version per second on average.
 */
export function createVersionCounter(options: { readonly stateFile?: string | undefined; readonly now: () => number }): VersionCounter {
  const { stateFile, now } = options;
  let previous = stateFile === undefined ? 0 : readState(stateFile);
  return {
    next() {
      const version = Math.max(previous + 1, Math.floor(now() / 1000));
      if (stateFile !== undefined) writeState(stateFile, version);
      previous = version;
      return version;
    },
  };
}

function readState(stateFile: string): number {
  let text: string;
  try {
    text = readFileSync(stateFile, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
  const version: unknown = (JSON.parse(text) as { version?: unknown }).version;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0) {
    throw new Error(`${stateFile}: expected {"version": <non-negative integer>}`);
  }
  return version;
}

function writeState(stateFile: string, version: number): void {
  // Write then rename: a crash mid-write must not leave a truncated counter.
  const temporary = `${stateFile}.${process.pid}.tmp`;
  writeFileSync(temporary, JSON.stringify({ version }) + '\n');
  renameSync(temporary, stateFile);
}

export interface PolicyServerOptions {
  readonly watcher: Pick<PolicyWatcher, 'current' | 'onChange'>;
  readonly signingKey: PolicySigningKey;
  readonly versions: VersionCounter;
  readonly logger: Logger;
  /** ms since the epoch. */
  readonly now?: () => number;
  readonly maxWaitSeconds?: number;
  /** Long-polls held at once; more are answered 503 with Retry-After. Default 10 000. */
  readonly maxWaiters?: number;
  /** mtls mode: serve on TLS 1.3 with this workload identity (src/identity/transport.ts). */
  readonly mesh?: MeshIdentity | undefined;
  /**
   * Re-sign the current version with a fresh `issuedAt` this often, so that
   * clients refusing documents older than their `maxAgeSeconds` keep
   * accepting an unchanged policy. Default 3600; 0 turns it off.
   */
  readonly reissueSeconds?: number;
}

export interface PolicyServer {
  readonly app: FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, Logger>;
  published(): PublishedPolicy | undefined;
  /** Long-polls being held; for tests and metrics. */
  waiting(): number;
  listen(address: { host: string; port: number }): Promise<string>;
  close(): Promise<void>;
}

interface Waiter {
  readonly release: (next: PublishedPolicy | undefined) => void;
}

/** The signed versions a policy server publishes, and the long polls waiting for the next one. */
export interface PolicyPublisher {
  published(): PublishedPolicy | undefined;
  /** Long-polls being held. */
  waiting(): number;
  /** Holds until a newer version, the deadline or `gone` closing (the client went away), whichever is first. */
  next(waitSeconds: number, gone: NodeJS.EventEmitter): Promise<PublishedPolicy | undefined>;
  /** True once close has begun: no new long poll is held. */
  closing(): boolean;
  /** Stops following the watcher, releases every long poll and waits for a signature in progress. */
  close(): Promise<void>;
}

export function createPolicyPublisher(options: Pick<PolicyServerOptions, 'watcher' | 'signingKey' | 'versions' | 'logger' | 'now' | 'reissueSeconds'>): PolicyPublisher {
  const { signingKey, versions, logger } = options;
  const now = options.now ?? Date.now;
  const waiters = new Set<Waiter>();
  let published: PublishedPolicy | undefined;
  let publishing: Promise<void> = Promise.resolve();
  let closing = false;

  const publish = (loaded: LoadedPolicy): void => {
    // Serialised, so versions are signed and published in the order they were numbered.
    publishing = publishing.then(async () => {
      const version = versions.next();
      const { digest } = loaded.compiled;
      const policy = policyToJSON(loaded.policy);
      const issuedAt = Math.floor(now() / 1000);
      const jws = await signPolicy({ version, digest, issuedAt, policy }, signingKey);
      published = { version, digest, etag: `"v${version}-${digest}"`, jws, policy, issuedAt };
      // The one line per new policy at the server (the watcher reports only failures).
      logger.info({ version, digest, policy: loaded.compiled.name, waiting: waiters.size }, 'policy published');
      for (const waiter of [...waiters]) waiter.release(published);
    }).catch((error: unknown) => {
      logger.error({ err: error }, 'policy could not be signed; still serving the previous version');
    });
  };

  const initial = options.watcher.current();
  if (initial !== undefined) publish(initial);
  const unsubscribe = options.watcher.onChange(publish);

  // Same version, same digest, fresh issuedAt: clients refresh its age, nothing else changes (src/policy/distribution/client.ts).
  const reissue = (): void => {
    publishing = publishing.then(async () => {
      const current = published;
      if (current === undefined || closing) return;
      const issuedAt = Math.floor(now() / 1000);
      // Within the second it was signed (the timer runs on the loop's cached clock, up to a busy turn early): nothing is fresher yet.
      if (issuedAt <= current.issuedAt) return;
      const jws = await signPolicy({ version: current.version, digest: current.digest, issuedAt, policy: current.policy }, signingKey);
      published = { ...current, etag: `"v${current.version}-${current.digest}-${issuedAt}"`, jws, issuedAt };
      logger.debug({ version: current.version, issuedAt }, 'policy re-issued');
      for (const waiter of [...waiters]) waiter.release(published);
    }).catch((error: unknown) => {
      logger.error({ err: error }, 'policy could not be re-signed; still serving the previous signature');
    });
  };
  const reissueSeconds = options.reissueSeconds ?? DEFAULT_REISSUE_SECONDS;
  const reissueTimer = reissueSeconds > 0 ? setInterval(reissue, reissueSeconds * 1000).unref() : undefined;

  return {
    published: () => published,
    waiting: () => waiters.size,
    closing: () => closing,
    next: (waitSeconds, gone) =>
      new Promise((resolve) => {
        const onGone = (): void => waiter.release(undefined);
        const timer = setTimeout(() => waiter.release(undefined), waitSeconds * 1000);
        const waiter: Waiter = {
          release(next) {
            clearTimeout(timer);
            gone.off('close', onGone);
            waiters.delete(waiter);
            resolve(next);
          },
        };
        waiters.add(waiter);
        gone.once('close', onGone);
      }),
    async close() {
      closing = true;
      clearInterval(reissueTimer);
      unsubscribe();
      for (const waiter of [...waiters]) waiter.release(undefined);
      await publishing;
    },
  };
}

export interface PolicyServerAppDependencies {
  readonly publisher: PolicyPublisher;
  readonly logger: Logger;
  readonly maxWaitSeconds: number;
  /** Long-polls held at once; more are answered 503 with Retry-After. */
  readonly maxWaiters: number;
  /** mtls mode: serve on TLS 1.3 with this workload identity (src/identity/transport.ts). */
  readonly mesh?: MeshIdentity | undefined;
}

/** The policy server's routes on a fastify instance, not yet listening. */
export function buildPolicyServerApp(deps: PolicyServerAppDependencies): PolicyServer['app'] {
  const { publisher, logger, maxWaitSeconds, maxWaiters, mesh } = deps;
  /**
   * mtls: TLS with the policy server's certificate, so sidecars and the STS
   * know they reach baton-policy-server (the policy is signed as well; TLS
   * adds server authentication and keeps the call graph off the wire).
   * Client certificates are not asked for: the policy is not a secret per
   * caller. A rotation swaps the secure context without dropping long polls
   * (src/identity/tls-server.ts).
   */
  let listener: GuardedListener<Server | HttpsServer> | undefined;
  const serverFactory = (handler: (req: IncomingMessage, res: ServerResponse) => void): Server => {
    const svid = mesh?.identity.current();
    listener =
      mesh === undefined
        ? createPlainListener(handler)
        : createTlsListener(handler, {
            tls: svid === undefined ? { minVersion: 'TLSv1.3' } : secureContextOptions(svid),
            followRotation: (apply) => mesh.identity.onRotate((next) => apply(secureContextOptions(next))),
          });
    // An https.Server is an http.Server to fastify; its types just do not say so.
    return listener.server as unknown as Server;
  };
  const app = Fastify({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    forceCloseConnections: true,
    serverFactory,
  });
  // SIGTERM: sockets that never carried a request go at once (long polls are cut by forceCloseConnections).
  app.addHook('preClose', (done) => {
    listener?.drain();
    done();
  });
  app.addHook('onClose', async () => listener?.dispose());

  void app.register(fastifyProblems, {
    onError: (error, raw, request) => {
      if (error.status >= 500) request.log.error({ err: raw, code: error.code }, 'policy server request failed');
    },
  });

  app.get('/livez', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const published = publisher.published();
    if (published === undefined || publisher.closing()) return sendProblem(reply, new NotReadyError('expected a valid policy to be loaded and signed, none is yet', { reason: published === undefined ? 'policy' : 'shutting-down' }));
    // mtls: without a valid certificate no sidecar can reach this server; never a fallback to plaintext.
    if (mesh !== undefined && mesh.identity.current() === undefined) {
      const status = mesh.identity.status();
      return sendProblem(reply, new NotReadyError(`expected a valid workload identity, have none (${status.reason ?? 'missing'}): ${status.problem ?? status.detail ?? 'no certificate loaded yet'}`, { reason: 'identity' }));
    }
    return { status: 'ready', version: published.version, digest: published.digest };
  });

  // Prometheus text: what is published and how many long polls are held, with the process's own series.
  const runtimeMetrics = createRuntimeMetrics('policy-server', 'baton-policy-server');
  app.get('/metrics', async (_request, reply) => {
    reply.header('cache-control', 'no-store').type(PROMETHEUS_CONTENT_TYPE);
    return policyServerMetrics(publisher, mesh) + (await runtimeMetrics.render().catch(() => ''));
  });

  app.get(CALLGRAPH_PATH, async (request, reply) => {
    const wait = parseWait((request.query as Record<string, unknown>).wait, maxWaitSeconds);
    const current = publisher.published();
    if (current === undefined) return sendProblem(reply.header('retry-after', '1'), new NotReadyError('expected a valid policy to be loaded and signed, none is yet', { reason: 'policy' }));
    if (!ifNoneMatchHolds(request.headers['if-none-match'], current.etag)) return sendPolicy(reply, current);
    if (wait === 0 || publisher.closing()) return notModified(reply, current);
    const waiting = publisher.waiting();
    if (waiting >= maxWaiters) return sendProblem(reply.header('retry-after', '5'), new OverloadedError(`expected at most ${maxWaiters} waiting requests, ${waiting} are waiting`, { reason: 'long-polls' }));
    const next = await publisher.next(wait, reply.raw);
    if (reply.raw.destroyed) return reply;
    return next === undefined ? notModified(reply, current) : sendPolicy(reply, next);
  });
  return app;
}

/** The policy server's own series: readiness, the version published and when it was signed, the long polls held. */
function policyServerMetrics(publisher: PolicyPublisher, mesh: MeshIdentity | undefined): string {
  const published = publisher.published();
  const ready = published !== undefined && !publisher.closing() && (mesh === undefined || mesh.identity.current() !== undefined);
  const lines: string[] = [];
  renderFamily(lines, 'baton_ready', 'gauge', 'Whether the policy server answers /readyz with 200 (1) or not (0).', [{ labels: '', value: ready ? 1 : 0 }]);
  renderFamily(lines, 'baton_policy_version', 'gauge', 'The version of the policy being served (0 before the first is signed).', [{ labels: '', value: published?.version ?? 0 }]);
  renderFamily(lines, 'baton_policy_issued_at_timestamp_seconds', 'gauge', 'When the policy being served was signed (its issuedAt), in seconds since the epoch.', [{ labels: '', value: published?.issuedAt ?? 0 }]);
  renderFamily(lines, 'baton_policy_long_polls', 'gauge', 'Long polls (?wait=) being held.', [{ labels: '', value: publisher.waiting() }]);
  return lines.join('\n') + '\n';
}

/** The policy server as a process runs it: a publisher, its app, and a listen step. */
export function createPolicyServer(options: PolicyServerOptions): PolicyServer {
  const publisher = createPolicyPublisher(options);
  const app = buildPolicyServerApp({
    publisher,
    logger: options.logger,
    maxWaitSeconds: options.maxWaitSeconds ?? MAX_WAIT_SECONDS,
    maxWaiters: options.maxWaiters ?? 10_000,
    mesh: options.mesh,
  });
  return {
    app,
    published: () => publisher.published(),
    waiting: () => publisher.waiting(),
    async listen({ host, port }) {
      return servedUrl(await app.listen({ host, port }), app.server);
    },
    async close() {
      await publisher.close();
      await app.close();
    },
  };
}

function parseWait(raw: unknown, maxWaitSeconds: number): number {
  if (raw === undefined) return 0;
  if (typeof raw !== 'string' || !/^\d{1,6}$/.test(raw)) {
    throw new BadRequestError(`expected wait to be a whole number of seconds (0-${maxWaitSeconds}), got ${JSON.stringify(String(raw).slice(0, 20))}`, { reason: 'wait' });
  }
  // Longer waits are clamped rather than refused: a client asking for more is not wrong, just ambitious.
  return Math.min(Number(raw), maxWaitSeconds);
}

/** RFC 9110 §13.1.2: If-None-Match uses the weak comparison; `*` matches any current representation. */
export function ifNoneMatchHolds(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const opaque = etag.replace(/^W\//, '');
  return header.split(',').some((candidate) => {
    const tag = candidate.trim();
    return tag === '*' || tag.replace(/^W\//, '') === opaque;
  });
}

function sendPolicy(reply: FastifyReply, published: PublishedPolicy): FastifyReply {
  return reply.code(200).headers(cacheHeaders(published)).type(POLICY_MEDIA_TYPE).send(published.jws);
}

function notModified(reply: FastifyReply, published: PublishedPolicy): FastifyReply {
  return reply.code(304).headers(cacheHeaders(published)).send();
}

function cacheHeaders(published: PublishedPolicy): Record<string, string> {
  // no-cache: intermediaries may store it but must revalidate, so no one is served a superseded policy.
  return { etag: published.etag, 'cache-control': 'no-cache', 'baton-policy-version': String(published.version) };
}
