/**
 * The policy server: serves the current call-graph policy as a signed,
 * versioned JWS at `GET /v1/callgraph`, with a strong `ETag`, conditional
 * requests (`If-None-Match` → 304, RFC 9110 §13.1.2) and long polling
 * (`?wait=SECONDS`) so sidecars learn of a new version within moments
 * without asking every second. What it serves is the publisher's
 * (./publisher.ts): this module is the HTTP surface only.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import Fastify, {
  LogController,
  type FastifyInstance,
  type FastifyReply,
  type RawReplyDefaultExpression,
  type RawRequestDefaultExpression,
  type RawServerDefault,
} from 'fastify';
import { BadRequestError, NotReadyError, OverloadedError } from '../../core/errors.ts';
import { fastifyProblems, sendProblem } from '../../core/fastify-problems.ts';
import { secureContextOptions, servedUrl } from '../../identity/tls.ts';
import { createPlainListener, createTlsListener, type GuardedListener } from '../../identity/tls-server.ts';
import type { MeshIdentity } from '../../identity/transport.ts';
import type { Logger } from 'pino';
import { MAX_WAIT_SECONDS } from './config.ts';
import {
  createPolicyPublisher,
  type PolicyPublisher,
  type PolicyPublisherOptions,
  type PublishedPolicy,
} from './publisher.ts';
import { CALLGRAPH_PATH, POLICY_MEDIA_TYPE } from './signing.ts';
import { PROMETHEUS_CONTENT_TYPE, renderFamily } from '../../telemetry/prometheus-text.ts';
import { createRuntimeMetrics } from '../../telemetry/runtime-metrics.ts';

export interface PolicyServerOptions extends PolicyPublisherOptions {
  readonly maxWaitSeconds?: number;
  /** Long-polls held at once; more are answered 503 with Retry-After. Default 10 000. */
  readonly maxWaiters?: number;
  /** mtls mode: serve on TLS 1.3 with this workload identity (src/identity/transport.ts). */
  readonly mesh?: MeshIdentity | undefined;
}

export interface PolicyServer {
  readonly app: FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, Logger>;
  published(): PublishedPolicy | undefined;
  /** Long-polls being held; for tests and metrics. */
  waiting(): number;
  listen(address: { host: string; port: number }): Promise<string>;
  close(): Promise<void>;
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
  const { publisher, maxWaitSeconds, maxWaiters, mesh } = deps;
  const app = createPolicyFastify(deps.logger, mesh);
  void app.register(fastifyProblems, {
    onError: (error, raw, request) => {
      if (error.status >= 500) request.log.error({ err: raw, code: error.code }, 'policy server request failed');
    },
  });
  registerHealthRoutes(app, publisher, mesh);
  app.get(CALLGRAPH_PATH, async (request, reply) => {
    const wait = parseWait((request.query as Record<string, unknown>).wait, maxWaitSeconds);
    const current = publisher.published();
    if (current === undefined)
      return sendProblem(
        reply.header('retry-after', '1'),
        new NotReadyError('expected a valid policy to be loaded and signed, none is yet', { reason: 'policy' }),
      );
    if (!ifNoneMatchHolds(request.headers['if-none-match'], current.etag)) return sendPolicy(reply, current);
    if (wait === 0 || publisher.closing()) return notModified(reply, current);
    const waiting = publisher.waiting();
    if (waiting >= maxWaiters)
      return sendProblem(
        reply.header('retry-after', '5'),
        new OverloadedError(`expected at most ${maxWaiters} waiting requests, ${waiting} are waiting`, {
          reason: 'long-polls',
        }),
      );
    const next = await publisher.next(wait, reply.raw);
    if (reply.raw.destroyed) return reply;
    return next === undefined ? notModified(reply, current) : sendPolicy(reply, next);
  });
  return app;
}

function createPolicyFastify(logger: Logger, mesh: MeshIdentity | undefined): PolicyServer['app'] {
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
  return app;
}

/** /livez, /readyz (a signed policy, not shutting down, in mtls mode a certificate) and /metrics. */
function registerHealthRoutes(
  app: PolicyServer['app'],
  publisher: PolicyPublisher,
  mesh: MeshIdentity | undefined,
): void {
  app.get('/livez', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const published = publisher.published();
    if (published === undefined || publisher.closing())
      return sendProblem(
        reply,
        new NotReadyError('expected a valid policy to be loaded and signed, none is yet', {
          reason: published === undefined ? 'policy' : 'shutting-down',
        }),
      );
    // mtls: without a valid certificate no sidecar can reach this server; never a fallback to plaintext.
    if (mesh !== undefined && mesh.identity.current() === undefined) {
      const status = mesh.identity.status();
      return sendProblem(
        reply,
        new NotReadyError(
          `expected a valid workload identity, have none (${status.reason ?? 'missing'}): ${status.problem ?? status.detail ?? 'no certificate loaded yet'}`,
          { reason: 'identity' },
        ),
      );
    }
    return { status: 'ready', version: published.version, digest: published.digest };
  });

  // Prometheus text: what is published and how many long polls are held, with the process's own series.
  const runtimeMetrics = createRuntimeMetrics('policy-server', 'baton-policy-server');
  app.get('/metrics', async (_request, reply) => {
    reply.header('cache-control', 'no-store').type(PROMETHEUS_CONTENT_TYPE);
    return policyServerMetrics(publisher, mesh) + (await runtimeMetrics.render().catch(() => ''));
  });
}

/** The policy server's own series: readiness, the version published and when it was signed, the long polls held. */
function policyServerMetrics(publisher: PolicyPublisher, mesh: MeshIdentity | undefined): string {
  const published = publisher.published();
  const ready =
    published !== undefined && !publisher.closing() && (mesh === undefined || mesh.identity.current() !== undefined);
  const lines: string[] = [];
  renderFamily(lines, 'baton_ready', 'gauge', 'Whether the policy server answers /readyz with 200 (1) or not (0).', [
    { labels: '', value: ready ? 1 : 0 },
  ]);
  renderFamily(
    lines,
    'baton_policy_version',
    'gauge',
    'The version of the policy being served (0 before the first is signed).',
    [{ labels: '', value: published?.version ?? 0 }],
  );
  renderFamily(
    lines,
    'baton_policy_issued_at_timestamp_seconds',
    'gauge',
    'When the policy being served was signed (its issuedAt), in seconds since the epoch.',
    [{ labels: '', value: published?.issuedAt ?? 0 }],
  );
  renderFamily(lines, 'baton_policy_long_polls', 'gauge', 'Long polls (?wait=) being held.', [
    { labels: '', value: publisher.waiting() },
  ]);
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
    throw new BadRequestError(
      `expected wait to be a whole number of seconds (0-${maxWaitSeconds}), got ${JSON.stringify(String(raw).slice(0, 20))}`,
      { reason: 'wait' },
    );
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
