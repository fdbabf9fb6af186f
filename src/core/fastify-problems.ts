/**
 * problem+json for every fastify server (the STS, the policy server, the
 * injector), written once as a fastify plugin: whatever a route throws, and
 * whatever fastify itself refuses (no such route, a body too large, a media
 * type no parser takes, a failed schema), is answered as an RFC 9457 problem
 * document whose `type` is the cause's section of docs/errors.md. Something
 * unforeseen becomes BATON_INTERNAL, and its message is never echoed: it
 * could hold a token.
 *
 * A route that must answer in another format keeps it through `render`: the
 * STS token endpoint answers RFC 6749 §5.2 JSON, as OAuth clients expect.
 */
import type { FastifyInstance, FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify';
import {
  BadRequestError,
  type HttpError,
  InternalError,
  isHttpError,
  NotFoundError,
  RequestBodyTooLargeError,
  UnsupportedMediaTypeError,
} from './errors.ts';
import { PROBLEM_CONTENT_TYPE, toProblem } from './problem.ts';

export interface ProblemsOptions {
  /**
   * Turns an error that is not an `HttpError` into one, before the generic
   * mapping; undefined leaves it to the generic mapping. The STS reads every
   * refusal by fastify on its token endpoint as an OAuth `invalid_request`.
   */
  readonly translate?: (raw: unknown, request: FastifyRequest) => HttpError | undefined;
  /** Sees every error answer before it is written: log lines, metrics, span attributes. `raw` is what was thrown. */
  readonly onError?: (error: HttpError, raw: unknown, request: FastifyRequest, reply: FastifyReply) => void;
  /** Writes the answer itself and returns true, for a route with its own error format; false leaves it a problem document. */
  readonly render?: (error: HttpError, request: FastifyRequest, reply: FastifyReply) => boolean;
}

/** Writes `error` as a problem document (RFC 9457 §3), never cached. */
export function sendProblem(reply: FastifyReply, error: HttpError): FastifyReply {
  return reply
    .code(error.status)
    .header('cache-control', 'no-store')
    .type(PROBLEM_CONTENT_TYPE)
    .send(JSON.stringify(toProblem(error)));
}

/** Any thrown value as an `HttpError`: a refusal by fastify keeps its meaning, anything else is internal. */
export function problemFor(raw: unknown): HttpError {
  if (isHttpError(raw)) return raw;
  const { statusCode, code, validation, validationContext } = (typeof raw === 'object' && raw !== null ? raw : {}) as {
    statusCode?: unknown;
    code?: unknown;
    validation?: readonly { instancePath?: string; message?: string }[];
    validationContext?: string;
  };
  const fastifyCode = typeof code === 'string' ? code : 'unknown';
  if (statusCode === 413)
    return new RequestBodyTooLargeError("expected a request body within the server's limit, got a larger one", {
      cause: raw,
    });
  if (statusCode === 415)
    return new UnsupportedMediaTypeError('expected a body of a media type this route takes, got another', {
      cause: raw,
    });
  if (Array.isArray(validation)) {
    // ajv's messages name the schema, not the data, so they can be shown.
    const first = validation[0];
    const where = `${validationContext ?? 'request'}${first?.instancePath ?? ''}`;
    return new BadRequestError(`expected ${where} to match the route's schema: ${first?.message ?? 'it does not'}`, {
      cause: raw,
    });
  }
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    return new BadRequestError(`expected a well-formed request, got one the server could not read (${fastifyCode})`, {
      cause: raw,
    });
  }
  return new InternalError('the server failed to answer; see its log', { cause: raw });
}

export const fastifyProblems: FastifyPluginCallback<ProblemsOptions> = (
  app: FastifyInstance,
  options: ProblemsOptions,
  done: (error?: Error) => void,
) => {
  const answer = (error: HttpError, raw: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    options.onError?.(error, raw, request, reply);
    if (options.render?.(error, request, reply) === true) return reply;
    return sendProblem(reply, error);
  };
  app.setErrorHandler((raw, request, reply) =>
    answer(options.translate?.(raw, request) ?? problemFor(raw), raw, request, reply),
  );
  app.setNotFoundHandler((request, reply) => {
    const error = new NotFoundError(
      `expected a route this server has, got ${request.method} ${request.url.split('?')[0]?.slice(0, 100)}`,
    );
    return answer(error, error, request, reply);
  });
  done();
};

// What fastify-plugin does: the handlers apply to the instance that registers the plugin, not to a child context.
Object.assign(fastifyProblems, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'baton-problems',
});
