import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Fastify, { type FastifyInstance, type InjectOptions } from 'fastify';
import {
  BadRequestError,
  InternalError,
  NotFoundError,
  RequestBodyTooLargeError,
  UnsupportedMediaTypeError,
  problemType,
} from '../../src/core/errors.ts';
import { fastifyProblems, type ProblemsOptions } from '../../src/core/fastify-problems.ts';
import { PROBLEM_CONTENT_TYPE } from '../../src/core/problem.ts';
import { AdmissionReviewInvalidError } from '../../src/injector/errors.ts';

// Shaped like a JWT so a leak would be visible; it signs nothing.
const TOKEN_LIKE = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';

function build(options: ProblemsOptions = {}): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 64 });
  void app.register(fastifyProblems, options);
  app.get('/refused', async () => {
    throw new AdmissionReviewInvalidError('expected an AdmissionReview');
  });
  app.get('/broken', async () => {
    throw new Error(`upstream said ${TOKEN_LIKE}`);
  });
  app.post('/echo', async (request) => request.body);
  app.get(
    '/typed',
    { schema: { querystring: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] } } },
    async () => ({ ok: true }),
  );
  // A route in a child context must be covered too.
  void app.register(async (child) => {
    child.get('/child', async () => {
      throw new AdmissionReviewInvalidError('expected a pod');
    });
  });
  return app;
}

async function problem(
  app: FastifyInstance,
  request: InjectOptions,
): Promise<{ status: number; body: Record<string, unknown>; raw: string; headers: Record<string, unknown> }> {
  const response = await app.inject(request);
  assert.equal(String(response.headers['content-type']).split(';')[0], PROBLEM_CONTENT_TYPE);
  assert.equal(response.headers['cache-control'], 'no-store');
  const body = response.json<Record<string, unknown>>();
  assert.equal(body.status, response.statusCode);
  assert.equal(body.type, problemType(String(body.code)));
  return { status: response.statusCode, body, raw: response.body, headers: response.headers };
}

describe('fastify problem+json plugin', () => {
  it('answers a thrown HttpError as its problem document, in child contexts too', async () => {
    const app = build();
    for (const url of ['/refused', '/child']) {
      const { status, body } = await problem(app, { method: 'GET', url });
      assert.equal(status, 400);
      assert.equal(body.code, AdmissionReviewInvalidError.code);
    }
    await app.close();
  });

  it('answers anything unforeseen as BATON_INTERNAL without echoing its message', async () => {
    const app = build();
    const { status, body, raw } = await problem(app, { method: 'GET', url: '/broken' });
    assert.equal(status, 500);
    assert.equal(body.code, InternalError.code);
    assert.ok(!raw.includes(TOKEN_LIKE));
    await app.close();
  });

  it('answers an unknown route as BATON_NOT_FOUND', async () => {
    const app = build();
    const { status, body } = await problem(app, { method: 'GET', url: '/nowhere?x=1' });
    assert.equal(status, 404);
    assert.equal(body.code, NotFoundError.code);
    await app.close();
  });

  it("keeps the meaning of fastify's own refusals", async () => {
    const app = build();
    const large = await problem(app, {
      method: 'POST',
      url: '/echo',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ pad: 'x'.repeat(100) }),
    });
    assert.deepEqual([large.status, large.body.code], [413, RequestBodyTooLargeError.code]);
    const media = await problem(app, {
      method: 'POST',
      url: '/echo',
      headers: { 'content-type': 'application/x-unknown' },
      payload: 'a',
    });
    assert.deepEqual([media.status, media.body.code], [415, UnsupportedMediaTypeError.code]);
    const json = await problem(app, {
      method: 'POST',
      url: '/echo',
      headers: { 'content-type': 'application/json' },
      payload: '{"a":',
    });
    assert.deepEqual([json.status, json.body.code], [400, BadRequestError.code]);
    const schema = await problem(app, { method: 'GET', url: '/typed?n=many' });
    assert.deepEqual([schema.status, schema.body.code], [400, BadRequestError.code]);
    assert.match(String(schema.body.detail), /querystring/);
    await app.close();
  });

  it('lets a route keep its own error format and a translation of its own, and reports every error once', async () => {
    const seen: string[] = [];
    const app = build({
      translate: (_raw, request) => (request.url === '/broken' ? new BadRequestError('translated') : undefined),
      onError: (error) => seen.push(error.code),
      render: (error, request, reply) => {
        if (request.url !== '/refused') return false;
        reply.code(error.status).type('application/json').send({ error: 'invalid_request', code: error.code });
        return true;
      },
    });
    const own = await app.inject({ method: 'GET', url: '/refused' });
    assert.equal(own.headers['content-type'], 'application/json; charset=utf-8');
    assert.deepEqual(own.json(), { error: 'invalid_request', code: AdmissionReviewInvalidError.code });
    const translated = await problem(app, { method: 'GET', url: '/broken' });
    assert.equal(translated.body.code, BadRequestError.code);
    await problem(app, { method: 'GET', url: '/nowhere' });
    assert.deepEqual(seen, [AdmissionReviewInvalidError.code, BadRequestError.code, NotFoundError.code]);
    await app.close();
  });
});
