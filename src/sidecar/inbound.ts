/**
 * The inbound port: what the pod's Service targets. Each request goes
 * through these steps, in this order (DESIGN.md, "Sidecar"):
 *
 *   ready → admit (the limit, the peer's share; a body deadline armed) →
 *   TLS peer (its SPIFFE ID maps to a service) → unambiguous path → bearer
 *   token (size, alphabet) → verify (cached until exp) → certificate
 *   binding (RFC 8705 §3) → the user's share → chain check against the
 *   policy → strip baton-* and untrusted proxy headers → identity headers →
 *   forward to the app, streaming both ways
 *
 * Any step may stop the request with a problem document; nothing after a
 * failed step runs.
 */
import { randomUUID } from 'node:crypto';
import type { Exchange } from '../dataplane/exchange.ts';
import type { UpstreamOrigin } from '../dataplane/pool.ts';
import { type Span, context } from '@opentelemetry/api';
import { writeAuditEvent } from '../telemetry/audit-event.ts';
import { endHttpSpan, startServerSpan, traceHeaders } from '../telemetry/http-spans.ts';
import type { Logger } from 'pino';
import type { SubjectPseudonym } from '../telemetry/subject-pseudonym.ts';
import { bearerToken } from './bearer.ts';
import { armBodyDeadline } from './body-deadline.ts';
import type { VerifiedTokenCache } from '../token/verified-cache.ts';
import { tokenDigest } from '../token/token-digest.ts';
import type { AccessTokenVerifier } from '../token/verifier.ts';
import type { VerifiedToken } from '../token/verified-token.ts';
import type { Tracing } from '../telemetry/tracing.ts';
import type { ContextHandles, PolicyView } from './collaborators.ts';
import { checkSidecarEdge } from './edge-check.ts';
import { type Forwarder, forwardRequestHeaders } from './forward.ts';
import { identityHeaders } from './identity-headers.ts';
import type { Inflight } from './inflight.ts';
import { FORWARDED, type SidecarMetrics } from './metrics.ts';
import { refuseAmbiguousPath } from './path-check.ts';
import { REQUEST_HEADER, type RequestIds } from './request-id.ts';
import { BINDING_ERROR_CODES, checkTokenBinding, type Listener, type Peer } from './token-binding.ts';
import { proxyHeaders, UNTRUSTED_REQUEST_HEADERS } from './untrusted-headers.ts';
import { BadRequestError, NotReadyError } from '../core/errors.ts';
import { FairShareExceededError, OverloadedError, RequestBodyTimeoutError, UnauthenticatedError } from './errors.ts';
import { asBatonError, sendProblem } from './problems.ts';

export interface InboundOptions {
  readonly service: string;
  /** The listener this handler serves: plaintext mode, the mTLS port, or an entrypoint's plaintext port in mtls mode. */
  readonly listener: Listener;
  /** The verified TLS peer of a request (src/sidecar/token-binding.ts `peerOf`); absent in plaintext mode. */
  readonly peerOf?: (exchange: Exchange) => Peer | undefined;
  /** The app, as the data plane dials it (`http://127.0.0.1:8080`). */
  readonly app: UpstreamOrigin;
  readonly forwardToken: boolean;
  readonly timeoutMs: number;
  /** How long the request body may take to arrive (./body-deadline.ts). */
  readonly bodyTimeoutMs: number;
  readonly maxTokenBytes: number;
  readonly ready: () => boolean;
  readonly policy: PolicyView;
  readonly verifier: AccessTokenVerifier;
  readonly verifiedCache: VerifiedTokenCache;
  readonly handles: ContextHandles;
  readonly requestIds: RequestIds;
  readonly forwarder: Forwarder;
  readonly inflight: Inflight;
  readonly metrics: SidecarMetrics;
  readonly tracing: Tracing;
  readonly logger: Logger;
  readonly subjectPseudonym?: SubjectPseudonym;
}

// The caller's proxy and method-override headers never reach the app (./untrusted-headers.ts).
const REPLACED: ReadonlySet<string> = UNTRUSTED_REQUEST_HEADERS;

export function createInboundHandler(options: InboundOptions): (exchange: Exchange) => void {
  const { service, logger, metrics } = options;
  // Tracing on: our span becomes the app's parent, so the caller's trace headers are replaced, not relayed.
  const { enabled: traced, tracer } = options.tracing;
  const replaced = traced ? new Set([...REPLACED, ...options.tracing.propagationFields]) : REPLACED;
  const requests = metrics.requests('inbound', service);

  async function handle(req: Exchange, tokenSeen: { present: boolean }): Promise<number> {
    // 1. Read the policy and its version once, as one value: a reload mid-request must not change the answer halfway.
    const snapshot = options.policy.snapshot();
    if (snapshot === undefined || !options.ready()) throw new NotReadyError('expected a verified call-graph policy and the STS keys, have not got them yet');
    const { policy } = snapshot;
    const path = originFormPath(req.url);
    // A path the app's server could read as another one (`..;/`, `%252e`, `%00`, overlong UTF-8) is refused outright.
    refuseAmbiguousPath(path);

    // 1b. Who is on the other end of the TLS connection: a certificate that maps to no service is refused.
    const peer = options.peerOf?.(req);

    // 2. The bearer token, limited before anything parses it.
    const token = bearerToken(req, options.maxTokenBytes);
    if (token === undefined) throw new UnauthenticatedError('expected an Authorization: Bearer token, got none');
    tokenSeen.present = true;

    // 3. Verify: issuer allow-list, keys, alg, typ, aud = this service, time claims (src/token/verifier.ts).
    //    The token is hashed once, for the verified-token cache.
    const digest = tokenDigest(token);
    const cached = options.verifiedCache.get(token, service, digest);
    const verified = cached ?? (await verify(token, digest));
    // One user may hold only its share of the in-flight limit (./inflight.ts).
    if (verified.user && !options.inflight.share(req, 'subject', `${verified.kind}\n${verified.subjectIssuer}\n${verified.subject}`)) {
      throw new FairShareExceededError('expected this user to hold fewer requests in flight, its share of the inbound limit is used up');
    }

    // 3b. RFC 8705 §3: a bound token only with its certificate, from the workload it names as caller; per request, never cached.
    checkTokenBinding(verified, peer, options.listener);

    // 4. The chain the token carries, against the policy for this method and path. The request id
    //    continues the caller's when the caller is a mesh service, and starts here otherwise.
    const request = (verified.kind === 'mesh' ? options.requestIds.accept(req.headers[REQUEST_HEADER]) : undefined) ?? options.requestIds.mint();
    checkSidecarEdge(
      policy,
      { chain: verified.chain, target: service, method: req.method, path, scopes: verified.scopes, acr: verified.acr, user: verified.user, subjectIssuer: verified.subjectIssuer },
      {
        direction: 'inbound',
        service,
        subject: verified.subject,
        subjectIssuer: verified.subjectIssuer,
        txn: verified.txn,
        request,
        policyVersion: snapshot.version,
        logger,
        metrics,
        pseudonym: options.subjectPseudonym,
        ...(peer === undefined ? {} : { peer: peer.spiffeId }),
        bound: verified.confirmation !== undefined,
      },
    );

    // 5–6. Only the sidecar speaks in baton-* headers: the caller's are dropped, the verified identity added.
    // The handle carries the request id, so the app's outbound calls are logged under this request.
    const contextHandle = options.handles.issue(token, verified, request);
    const add = identityHeaders({ subject: verified.subject, subjectIssuer: verified.subjectIssuer, user: verified.user, chain: verified.chain, external: verified.kind === 'external', scopes: verified.scopes, txn: verified.txn, request, contextHandle });
    add.push(...proxyHeaders(req));
    if (req.headers['x-request-id'] === undefined) add.push('x-request-id', randomUUID());
    // Tracing: the app's spans are children of our SERVER span, which lasts until the app has answered.
    if (traced) add.push(...traceHeaders(context.active()));
    const headers = forwardRequestHeaders(req.head, { dropAuthorization: !options.forwardToken, drop: replaced, add });

    // 7. To the app, streaming — unless the body deadline has answered meanwhile.
    if (req.headersSent || req.closed) return req.statusCode;
    // The app reads the Host the caller sent (the parser checked it is one authority), written first by the data plane.
    return options.forwarder.forward(req, { origin: options.app, path: req.url, host: req.headers.host as string, headers, timeoutMs: options.timeoutMs });
  }

  async function verify(token: string, digest: string): Promise<VerifiedToken> {
    const verified = await options.verifier.verify(token, { audience: service });
    options.verifiedCache.set(token, service, verified, digest);
    return verified;
  }

  return (req) => {
    const started = performance.now();
    if (!options.inflight.admit(req)) {
      const overloaded = new OverloadedError('expected fewer requests in flight, the inbound limit is reached');
      sendProblem(req, overloaded, false);
      requests.done(overloaded.status, overloaded.code, (performance.now() - started) / 1000);
      return;
    }
    if (!options.inflight.share(req, 'peer', req.socket.remoteAddress ?? 'unknown')) {
      const refused = new FairShareExceededError('expected this peer to hold fewer requests in flight, its share of the inbound limit is used up');
      sendProblem(req, refused, false);
      requests.done(refused.status, refused.code, (performance.now() - started) / 1000);
      return;
    }
    if (!traced) return run(req, undefined, started);
    // A SERVER span, child of the caller's traceparent; everything below (audit lines included) runs in it.
    const server = startServerSpan(tracer, req, req.url.split('?', 1)[0] as string);
    context.with(server.context, run, undefined, req, server.span, started);
  };

  function run(req: Exchange, span: Span | undefined, started: number): void {
    const tokenSeen = { present: false };
    let expired = false;
    // The app's timeout does not cover the upload: a body trickled byte by byte would hold its slot for ever.
    armBodyDeadline(req, options.bodyTimeoutMs, () => {
      expired = true;
      requests.done(408, RequestBodyTimeoutError.code, (performance.now() - started) / 1000);
      req.shouldKeepAlive = false;
      sendProblem(req, new RequestBodyTimeoutError(`expected the request body within ${options.bodyTimeoutMs} ms, it was still arriving`), tokenSeen.present);
      if (span !== undefined) endHttpSpan(span, 'server', 408, RequestBodyTimeoutError.code);
    });
    handle(req, tokenSeen).then(
      (status) => {
        if (expired) return;
        requests.done(status, FORWARDED, (performance.now() - started) / 1000);
        if (span !== undefined) endHttpSpan(span, 'server', status);
      },
      (error: unknown) => {
        if (expired) return;
        const problem = asBatonError(error);
        if (BINDING_ERROR_CODES.has(problem.code)) {
          metrics.bindingRefusal(problem.code);
          // A 401 is not a server error, but a refused binding is what an operator hunts for: name it on the span.
          span?.setAttribute('error.type', problem.code);
        }
        if (problem.status >= 500) writeAuditEvent(logger, { event: 'request_failed', component: 'sidecar', direction: 'inbound', code: problem.code, status: problem.status, method: req.method }, problem.title);
        sendProblem(req, problem, tokenSeen.present);
        requests.done(problem.status, problem.code, (performance.now() - started) / 1000);
        if (span !== undefined) endHttpSpan(span, 'server', problem.status, problem.code);
      },
    );
  }
}

/** The path (query cut off) of an origin-form request target; the inbound port is not a proxy. */
export function originFormPath(url: string | undefined): string {
  if (url === undefined || url.charCodeAt(0) !== 0x2f) throw new BadRequestError('expected an origin-form request target (/path), got another form');
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}
