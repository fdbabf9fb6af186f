/**
 * The STS HTTP surface: RFC 8414 metadata, the JWK Set, the token endpoint
 * and health. A thin shell: each request is parsed, the client
 * authenticated, and the grant handler run; every refusal becomes an
 * RFC 6749 §5.2 error body.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Dispatcher } from 'undici';
import {
  BadRequestError,
  type HttpError,
  InternalError,
  MethodNotAllowedError,
  NotFoundError,
  isHttpError,
} from '../core/errors.ts';
import { fastifyProblems } from '../core/fastify-problems.ts';
import { servedUrl, serverTlsOptions } from '../identity/tls.ts';
import { createPlainListener, createTlsListener, type GuardedListener } from '../identity/tls-server.ts';
import type { MeshIdentity } from '../identity/transport.ts';
import { CLIENT_CREDENTIALS_GRANT, TOKEN_EXCHANGE_GRANT } from '../core/token-types.ts';
import { retryAfterFor } from '../core/problem.ts';
import type { PolicySnapshot } from '../policy/distribution/source.ts';
import type { CompiledPolicy } from '../policy/language/decision.ts';
import { writeAuditEvent } from '../telemetry/audit-event.ts';
import { recordErrorType } from '../telemetry/http-spans.ts';
import { type Tracing, TRACING_OFF } from '../telemetry/tracing.ts';
import type { Logger } from 'pino';
import { PROMETHEUS_CONTENT_TYPE } from '../telemetry/prometheus-text.ts';
import { createRuntimeMetrics } from '../telemetry/runtime-metrics.ts';
import { type GrantLabel, createStsMetrics } from '../telemetry/sts-metrics.ts';
import { recordIssuanceOutcome } from '../telemetry/sts-span.ts';
import { setHttpRoute, tracedListener } from '../telemetry/traced-listener.ts';
import { clientCertificateOf } from './client-auth.ts';
import type { StsConfig } from './config.ts';
import { parseTokenRequestForm } from './form.ts';
import { clientCredentialsGrant } from './grants/client-credentials.ts';
import type { GrantHandler } from './grants/grant-context.ts';
import { tokenExchangeGrant } from './grants/token-exchange.ts';
import { jwksMaxAgeSeconds, type KeyStore } from './key-store.ts';
import { authorizationServerMetadata, stsEndpoints, stsPaths } from './metadata.ts';
import { TokenIntrospectionThrottledError } from '../token/errors.ts';
import type { ReplayStore } from './replay-store.ts';
import { createStsCollaborators, type StsCollaborators } from './wiring.ts';
import {
  AuthThrottledError,
  InvalidClientError,
  toOAuthError,
  tokenEndpointStatus,
  UnsupportedGrantTypeError,
} from './errors.ts';

/** The part of a policy source the STS needs (src/policy/distribution/source.ts `PolicySource` fits). */
export interface StsPolicySource {
  current(): CompiledPolicy | undefined;
  snapshot(): PolicySnapshot | undefined;
  ready(): boolean;
}

export interface StsDependencies {
  readonly logger: Logger;
  readonly policy: StsPolicySource;
  readonly keys: KeyStore;
  readonly replay?: ReplayStore;
  readonly dispatcher?: Dispatcher;
  readonly now?: () => number;
  /** mtls mode: the STS's workload identity and the SPIFFE rule (src/identity/transport.ts). */
  readonly mesh?: MeshIdentity | undefined;
  /** From startTelemetry (src/telemetry/tracing.ts); off when absent. */
  readonly tracing?: Tracing;
}

export interface StsServer {
  readonly app: FastifyInstance;
  /** Listens on config host/port; resolves with the base URL. */
  listen(): Promise<string>;
  /** Readiness fails from now on (SIGTERM), before in-flight requests drain. */
  drain(): void;
  close(): Promise<void>;
}

const FORM_CONTENT_TYPE = 'application/x-www-form-urlencoded';
const MAX_BODY_BYTES = 64 * 1024;
const UNTRACED_PATHS: ReadonlySet<string> = new Set(['/metrics', '/livez', '/readyz']);

const GRANTS: Readonly<Record<string, GrantHandler>> = {
  [TOKEN_EXCHANGE_GRANT]: tokenExchangeGrant,
  [CLIENT_CREDENTIALS_GRANT]: clientCredentialsGrant,
};

/** The STS's routes on a fastify instance, not yet listening; closing it releases what it opened. */
export function buildStsApp(
  config: StsConfig,
  deps: StsDependencies & { readonly draining?: () => boolean },
): FastifyInstance {
  const now = deps.now ?? Date.now;
  const { mesh } = deps;
  if (config.transport.mode === 'mtls' && mesh === undefined)
    throw new TypeError('createStsServer: transport.mode mtls needs deps.mesh (the workload identity)');
  const collaborators = createStsCollaborators(config, {
    logger: deps.logger,
    policy: deps.policy,
    keys: deps.keys,
    replay: deps.replay,
    dispatcher: deps.dispatcher,
    mesh,
    now,
  });
  const { app, listener } = createStsFastify(mesh, deps.tracing ?? TRACING_OFF);
  const observed = observeTokenRequests(app);
  registerTokenEndpointErrors(app, stsPaths(config.issuer).token, deps.logger, observed);
  registerStsRoutes(app, config, deps, collaborators, observed);
  app.addHook('onClose', async () => {
    listener()?.dispose();
    await collaborators.close();
  });
  return app;
}

/** How each token request went, for its metric: its grant and its start, and the series they are counted in. */
interface ObservedRequests {
  readonly metrics: ReturnType<typeof createStsMetrics>;
  readonly grantOf: WeakMap<FastifyRequest, GrantLabel>;
  elapsedSeconds(request: FastifyRequest): number;
}

function observeTokenRequests(app: FastifyInstance): ObservedRequests {
  const grantOf = new WeakMap<FastifyRequest, GrantLabel>();
  // When each request arrived. Not reply.elapsedTime: Fastify starts that clock only with its logger or an onResponse hook, neither of which runs here, so it read 0.
  const startedAt = new WeakMap<FastifyRequest, number>();
  app.addHook('onRequest', (request, _reply, done) => {
    startedAt.set(request, performance.now());
    setHttpRoute(request.method, request.routeOptions.url);
    done();
  });
  return {
    metrics: createStsMetrics(),
    grantOf,
    elapsedSeconds(request) {
      const started = startedAt.get(request);
      return started === undefined ? 0 : (performance.now() - started) / 1000;
    },
  };
}

type Listener = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * The fastify instance on baton's own listener. mtls: TLS 1.3 with the
 * STS's certificate. Client certificates are optional so secret and
 * private_key_jwt clients still work, but one that is presented must verify
 * against the bundle. A rotation swaps the secure context without dropping
 * open connections (src/identity/tls-server.ts).
 */
function createStsFastify(
  mesh: MeshIdentity | undefined,
  tracing: Tracing,
): { app: FastifyInstance; listener: () => GuardedListener<Server | HttpsServer> | undefined } {
  // Tracing on: each request in a SERVER span, child of the sidecar's exchange span (W3C traceparent);
  // scrapes and probes are not traced: they are not traffic, and a span every few seconds each buries it.
  const wrap = (handler: Listener): Listener =>
    tracing.enabled ? tracedListener(tracing.tracer, handler, UNTRACED_PATHS) : handler;
  let listener: GuardedListener<Server | HttpsServer> | undefined;
  const serverFactory = (handler: Listener): Server => {
    const svid = mesh?.identity.current();
    listener =
      mesh === undefined
        ? createPlainListener(wrap(handler))
        : createTlsListener(wrap(handler), {
            tls:
              svid === undefined
                ? { requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' }
                : serverTlsOptions(svid, 'optional'),
            verifyPresentedCertificates: true,
            followRotation: (apply) => mesh.identity.onRotate((next) => apply(serverTlsOptions(next, 'optional'))),
          });
    // An https.Server is an http.Server to fastify; its types just do not say so.
    return listener.server as unknown as Server;
  };
  const app = Fastify({
    logger: false,
    bodyLimit: MAX_BODY_BYTES,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    serverFactory,
  });
  // SIGTERM: sockets that never carried a request go at once, requests in flight get the grace period, then every socket is cut.
  app.addHook('preClose', (done) => {
    listener?.drain();
    done();
  });
  app.addContentTypeParser(
    FORM_CONTENT_TYPE,
    { parseAs: 'string', bodyLimit: MAX_BODY_BYTES },
    (_request, body, done) => done(null, body),
  );
  return { app, listener: () => listener };
}

/** Every refusal as a problem document, and at the token endpoint as an RFC 6749 §5.2 error; each one audited and counted. */
function registerTokenEndpointErrors(
  app: FastifyInstance,
  tokenPath: string,
  logger: Logger,
  observed: ObservedRequests,
): void {
  const isTokenEndpoint = (request: FastifyRequest): boolean => request.url.split('?')[0] === tokenPath;
  void app.register(fastifyProblems, {
    // The token endpoint's refusals are OAuth errors: whatever fastify refuses there is invalid_request, anything else server_error.
    translate: (raw, request) => (isTokenEndpoint(request) && !isHttpError(raw) ? tokenEndpointError(raw) : undefined),
    onError: (error, raw, request) => {
      // The SERVER span says why: its error.type is the refusal's stable code.
      recordErrorType(error.code);
      // Probes of unknown paths are not refusals worth a log line each.
      if (error.code === NotFoundError.code) return;
      if (error.status >= 500)
        logger.error(
          {
            code: error.code,
            reason: error.reason,
            err: { message: (raw as Error).message, code: (raw as { code?: unknown }).code },
          },
          'token endpoint failed',
        );
      // Every refusal is an audit line with what the client got: the status, and at /token the RFC 6749 §5.2 error.
      const path = (request.url.split('?')[0] ?? '/').slice(0, 200);
      const atTokenEndpoint = isTokenEndpoint(request);
      writeAuditEvent(
        logger,
        {
          event: 'token_refused',
          component: 'sts',
          code: error.code,
          reason: error.reason,
          status: atTokenEndpoint ? tokenEndpointStatus(error) : error.status,
          error: atTokenEndpoint ? toOAuthError(error).error : undefined,
          path,
        },
        error.message,
      );
    },
    render: (error, request, reply) => {
      if (!isTokenEndpoint(request)) return false;
      const body = toOAuthError(error);
      observed.metrics.tokenRequest(
        observed.grantOf.get(request) ?? 'other',
        body.error,
        observed.elapsedSeconds(request),
      );
      recordIssuanceOutcome({ exchangeOutcome: `refused:${body.error}` });
      reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
      // RFC 6749 §5.2: a client that tried Basic auth gets 401 and a WWW-Authenticate challenge.
      if (error.code === InvalidClientError.code && /^basic /i.test(request.headers.authorization ?? '')) {
        reply.header('www-authenticate', 'Basic realm="baton-sts", charset="UTF-8"');
      }
      // RFC 6585 §4, RFC 9110 §10.2.3: a throttle says when to come back.
      if (error.code === AuthThrottledError.code || error.code === TokenIntrospectionThrottledError.code)
        reply.header('retry-after', String(retryAfterFor(error)));
      reply.code(tokenEndpointStatus(error)).type('application/json').send(body);
      return true;
    },
  });
}

/** Metadata, the JWK Set, health and metrics; the token endpoint (registerTokenEndpoint). */
function registerStsRoutes(
  app: FastifyInstance,
  config: StsConfig,
  deps: StsDependencies & { readonly draining?: () => boolean },
  collaborators: StsCollaborators,
  observed: ObservedRequests,
): void {
  const { mesh, keys, policy } = deps;
  const paths = stsPaths(config.issuer);
  const metadata = authorizationServerMetadata(
    stsEndpoints(config.issuer),
    [...new Set([config.signingAlg, keys.active().alg])],
    mesh !== undefined,
  );
  const draining = deps.draining ?? (() => false);
  const jwksCacheControl = `public, max-age=${jwksMaxAgeSeconds(keys.prepublishSeconds)}`;
  const runtimeMetrics = createRuntimeMetrics('sts', 'baton-sts');
  // RFC 8414 §3.1 for OAuth clients; OpenID Connect Discovery's name as well, which most OAuth client
  // libraries ask first (RFC 8414 §5): the same document, claiming nothing of an OpenID Provider (docs/sts.md).
  for (const path of new Set([paths.authorizationServerMetadata, paths.openidConfiguration])) {
    app.get(path, async (_request, reply) => {
      reply.header('cache-control', 'public, max-age=300');
      return metadata;
    });
  }
  app.get(paths.jwks, async (_request, reply) => {
    // Well under prepublishSeconds: a cached copy cannot hide a standby key past its activation.
    reply.header('cache-control', jwksCacheControl).type('application/jwk-set+json');
    return keys.jwks();
  });
  app.get('/livez', async () => ({ status: 'ok' }));
  // Prometheus text; counts only, labelled by grant and OAuth outcome, never by client or subject.
  app.get('/metrics', async (_request, reply) => {
    reply.header('cache-control', 'no-store').type(PROMETHEUS_CONTENT_TYPE);
    // A runtime collector that fails must not cost the scrape the token series.
    return (
      observed.metrics.render() +
      (collaborators.replay.renderMetrics?.() ?? '') +
      (await runtimeMetrics.render().catch(() => ''))
    );
  });
  app.get('/readyz', async (_request, reply) => {
    const policyReady = policy.ready() && policy.current() !== undefined;
    // mtls: without a valid certificate no sidecar can reach the STS; never a fallback to plaintext.
    const identity = mesh?.identity.status();
    const identityReady = mesh === undefined || mesh.identity.current() !== undefined;
    const ready = policyReady && identityReady && !draining();
    reply.code(ready ? 200 : 503);
    return {
      status: ready ? 'ready' : 'not ready',
      policy: policyReady ? policy.current()?.digest : 'none',
      draining: draining(),
      ...(identity === undefined ? {} : { identity }),
    };
  });
  registerTokenEndpoint(app, paths.token, collaborators, observed);
}

/** POST /token: the form read, the client authenticated, the grant run. */
function registerTokenEndpoint(
  app: FastifyInstance,
  tokenPath: string,
  { authenticator, context }: StsCollaborators,
  observed: ObservedRequests,
): void {
  app.post(tokenPath, async (request: FastifyRequest, reply: FastifyReply) => {
    // RFC 6749 §5.1: token responses MUST carry Cache-Control: no-store and Pragma: no-cache.
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
    if (typeof request.body !== 'string' || !isForm(request.headers['content-type'])) {
      throw new BadRequestError(`expected a ${FORM_CONTENT_TYPE} body (RFC 6749 §3.2)`, { reason: 'not-form-encoded' });
    }
    const params = parseTokenRequestForm(request.body);
    const grantType = params.get('grant_type');
    if (grantType === undefined)
      throw new BadRequestError('expected the parameter grant_type, got none', { reason: 'missing-parameter' });
    observed.grantOf.set(request, grantLabel(grantType));
    const handler = Object.hasOwn(GRANTS, grantType) ? GRANTS[grantType] : undefined;
    const socket = request.raw.socket;
    const client = await authenticator.authenticate(request.headers.authorization, params, {
      address: socket.remoteAddress ?? 'unknown',
      certificate: clientCertificateOf(socket),
    });
    if (handler === undefined)
      throw new UnsupportedGrantTypeError(
        'expected grant_type token-exchange (RFC 8693) or client_credentials, got another',
      );
    const response = await handler(params, client, context);
    observed.metrics.tokenRequest(grantLabel(grantType), 'issued', observed.elapsedSeconds(request));
    return response;
  });

  // RFC 6749 §3.2: POST only. Credentials in a GET query would sit in access logs and proxies.
  app.route({
    method: ['GET', 'HEAD', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
    url: tokenPath,
    handler: async (request, reply) => {
      reply.header('allow', 'POST');
      throw new MethodNotAllowedError(`expected POST, got ${request.method}`);
    },
  });
}

/** The STS as a process runs it: the app, a listen step on config host/port, and a drain for SIGTERM. */
export function createStsServer(config: StsConfig, deps: StsDependencies): StsServer {
  let draining = false;
  const app = buildStsApp(config, { ...deps, draining: () => draining });
  return {
    app,
    async listen() {
      return servedUrl(await app.listen({ host: config.host, port: config.port }), app.server);
    },
    drain() {
      draining = true;
    },
    async close() {
      draining = true;
      await app.close();
    },
  };
}

function grantLabel(grantType: string): GrantLabel {
  return grantType === TOKEN_EXCHANGE_GRANT
    ? 'token_exchange'
    : grantType === CLIENT_CREDENTIALS_GRANT
      ? 'client_credentials'
      : 'other';
}

function isForm(contentType: string | undefined): boolean {
  return contentType !== undefined && contentType.split(';')[0]?.trim().toLowerCase() === FORM_CONTENT_TYPE;
}

function tokenEndpointError(raw: unknown): HttpError {
  const status = (raw as { statusCode?: unknown } | undefined)?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    // Fastify's own refusals: wrong media type, body too large, bad encoding.
    return new BadRequestError(`expected a ${FORM_CONTENT_TYPE} body of at most ${MAX_BODY_BYTES} bytes`, {
      cause: raw,
      reason: 'unreadable-body',
    });
  }
  return new InternalError('the token endpoint failed; see the STS log', { cause: raw });
}
