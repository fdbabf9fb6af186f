/**
 * The mutating admission webhook over HTTPS: `POST /mutate`, `/livez`,
 * `/readyz`. The API server only speaks TLS to webhooks; the certificate is
 * reloaded in place when cert-manager rotates it.
 */
import type { Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { servedUrl } from '../identity/tls.ts';
import { createTlsListener, type GuardedListener, type RequestListener } from '../identity/tls-server.ts';
import Fastify, { type FastifyInstance } from 'fastify';
import { NotReadyError, isHttpError } from '../core/errors.ts';
import { fastifyProblems } from '../core/fastify-problems.ts';
import type { Logger } from 'pino';
import { reviewAdmission } from './admission-review.ts';
import type { InjectorConfig } from './config.ts';
import { AdmissionReviewInvalidError } from './errors.ts';
import { type TlsFiles, watchTlsFiles } from './tls-files.ts';

export interface InjectorServer {
  /** Resolves with the bound URL. */
  start(): Promise<string>;
  ready(): boolean;
  close(): Promise<void>;
}

// An AdmissionReview carries the whole pod; etcd caps objects at 1.5 MiB, the review wraps it twice at most.
const BODY_LIMIT = 8 * 1024 * 1024;

export interface InjectorAppDependencies {
  readonly logger: Logger;
  /** The serving certificate, kept fresh from its files (src/injector/tls-files.ts). */
  readonly tls: TlsFiles;
  /** False once shutdown has begun: /readyz fails before in-flight reviews drain. */
  readonly ready: () => boolean;
}

/** The webhook's routes on an HTTPS fastify instance, not yet listening. */
export function buildInjectorApp(config: InjectorConfig, deps: InjectorAppDependencies): FastifyInstance {
  const { logger, tls } = deps;
  // The serving certificate follows its files (src/identity/tls-server.ts); every socket is guarded and shutdown is bounded.
  let listener: GuardedListener<HttpsServer> | undefined;
  const serverFactory = (handler: RequestListener): Server => {
    listener = createTlsListener(handler, {
      tls: { ...tls.current() },
      followRotation: (apply) => {
        tls.onChange((material) => apply({ ...material }));
        return () => undefined;
      },
    });
    // An https.Server is an http.Server to fastify; its types just do not say so.
    return listener.server as unknown as Server;
  };
  const app: FastifyInstance = Fastify({
    serverFactory,
    logger: false,
    bodyLimit: BODY_LIMIT,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  }) as unknown as FastifyInstance;
  app.addHook('preClose', (done) => {
    listener?.drain();
    done();
  });
  app.addHook('onClose', async () => listener?.dispose());

  void app.register(fastifyProblems, {
    // A body fastify could not read (not JSON, too large) is not an AdmissionReview.
    translate: (raw) =>
      isClientError(raw)
        ? new AdmissionReviewInvalidError(
            `the request body could not be read as JSON (${(raw as { code?: string }).code ?? 'bad request'})`,
          )
        : undefined,
    onError: (error, raw) => {
      if (error.status >= 500)
        logger.error(
          { event: 'webhook_error', code: error.code, err: raw instanceof Error ? raw.message : String(raw) },
          'webhook failed',
        );
    },
  });

  app.get('/livez', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    if (!deps.ready()) throw new NotReadyError('the webhook is shutting down', { reason: 'shutting-down' });
    const problem = tls.problem();
    if (problem !== undefined) throw new NotReadyError(problem);
    return reply.send({ status: 'ready' });
  });
  app.post('/mutate', async (request, reply) => {
    const { review, outcome } = reviewAdmission(request.body, config.sidecar);
    const { plan } = outcome;
    logger.info(
      {
        event: 'admission',
        uid: outcome.uid,
        namespace: outcome.namespace,
        pod: outcome.pod,
        operation: outcome.operation,
        outcome: plan.outcome,
        ...(plan.outcome === 'inject'
          ? { serviceAccount: plan.serviceAccount, service: plan.service, patchOps: plan.patch.length }
          : { reason: plan.reason }),
      },
      `admission ${plan.outcome}`,
    );
    return reply.type('application/json').send(review);
  });
  return app;
}

export function createInjectorServer(config: InjectorConfig, deps: { logger: Logger }): InjectorServer {
  const tls = watchTlsFiles(config.tls, deps.logger);
  let closing = false;
  const app = buildInjectorApp(config, { logger: deps.logger, tls, ready: () => !closing });
  return {
    async start() {
      const address = servedUrl(await app.listen({ host: config.host, port: config.port }), app.server);
      return address.replace('localhost', '127.0.0.1');
    },
    ready: () => !closing,
    async close() {
      closing = true;
      tls.close();
      await app.close();
    },
  };
}

function isClientError(raw: unknown): boolean {
  const status = (raw as { statusCode?: unknown } | undefined)?.statusCode;
  return !isHttpError(raw) && typeof status === 'number' && status >= 400 && status < 500;
}
