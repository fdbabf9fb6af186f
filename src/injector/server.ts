/**
 * The mutating admission webhook over HTTPS: `POST /mutate`, `/livez`,
 * `/readyz`. The API server only speaks TLS to webhooks; the certificate is
 * reloaded in place when cert-manager rotates it.
 */
import type { Server as HttpsServer } from 'node:https';
import Fastify, { type FastifyInstance } from 'fastify';
import { isBatonError } from '../core/errors.ts';
import { PROBLEM_CONTENT_TYPE, toProblem } from '../core/problem.ts';
import type { Logger } from 'pino';
import { reviewAdmission } from './admission-review.ts';
import type { InjectorConfig } from './config.ts';
import { AdmissionReviewInvalidError, InjectorNotReadyError } from './errors.ts';
import { watchTlsFiles } from './tls-files.ts';

export interface InjectorServer {
  /** Resolves with the bound URL. */
  start(): Promise<string>;
  ready(): boolean;
  close(): Promise<void>;
}

// An AdmissionReview carries the whole pod; etcd caps objects at 1.5 MiB, the review wraps it twice at most.
const BODY_LIMIT = 8 * 1024 * 1024;

export function createInjectorServer(config: InjectorConfig, deps: { logger: Logger }): InjectorServer {
  const { logger } = deps;
  const tls = watchTlsFiles(config.tls, logger);
  let closing = false;
  const app: FastifyInstance = Fastify({ https: { ...tls.current() }, logger: false, bodyLimit: BODY_LIMIT, return503OnClosing: true }) as unknown as FastifyInstance;
  tls.onChange((material) => (app.server as HttpsServer).setSecureContext({ ...material }));

  app.setErrorHandler((error, request, reply) => {
    const status = typeof (error as { statusCode?: unknown }).statusCode === 'number' ? (error as { statusCode: number }).statusCode : 500;
    const baton = isBatonError(error)
      ? error
      : status >= 400 && status < 500
        ? new AdmissionReviewInvalidError(`the request body could not be read as JSON (${(error as { code?: string }).code ?? 'bad request'})`)
        : undefined;
    if (baton === undefined) logger.error({ event: 'webhook_error', err: error instanceof Error ? error.message : String(error) }, 'webhook failed');
    const problem = baton === undefined ? { type: 'about:blank', title: 'Internal Server Error', status: 500, detail: 'the webhook failed', code: 'BATON_INTERNAL' } : toProblem(baton, request.url);
    return reply.code(problem.status).type(PROBLEM_CONTENT_TYPE).send(problem);
  });

  app.get('/livez', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    if (closing) throw new InjectorNotReadyError('the webhook is shutting down');
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
        ...(plan.outcome === 'inject' ? { serviceAccount: plan.serviceAccount, patchOps: plan.patch.length } : { reason: plan.reason }),
      },
      `admission ${plan.outcome}`,
    );
    return reply.type('application/json').send(review);
  });

  return {
    async start() {
      const address = await app.listen({ host: config.host, port: config.port });
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
