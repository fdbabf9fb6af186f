/**
 * The inbound port: what the pod's Service targets. Each request goes
 * through these steps, in this order (DESIGN.md, "Sidecar"):
 *
 *   ready → admit (the limit, the peer's share; a body deadline armed) →
 *   unambiguous path → bearer token (size, alphabet) → verify (cached
 *   until exp) → the user's share → chain check against the policy →
 *   strip baton-* and untrusted proxy headers → identity headers →
 *   forward to the app, streaming both ways
 *
 * Any step may stop the request with a problem document; nothing after a
 * failed step runs.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Span, context } from '@opentelemetry/api';
import { batonTracer, endHttpSpan, propagationFields, startServerSpan, traceHeaders, tracingActive } from '../telemetry/http-spans.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { SubjectPseudonym } from '../telemetry/subject-pseudonym.ts';
import { bearerToken } from './bearer.ts';
import { armBodyDeadline } from './body-deadline.ts';
import type { ContextHandles, PolicyView, TokenVerifier, VerifiedSubject, VerifiedTokenCache } from './collaborators.ts';
import { checkEdge } from './edge-check.ts';
import { type Forwarder, forwardRequestHeaders } from './forward.ts';
import { identityHeaders } from './identity-headers.ts';
import type { Inflight } from './inflight.ts';
import type { SidecarMetrics } from './metrics.ts';
import { refuseAmbiguousPath } from './path-check.ts';
import { proxyHeaders, UNTRUSTED_REQUEST_HEADERS } from './untrusted-headers.ts';
import { BadRequestError, FairShareExceededError, NotReadyError, OverloadedError, RequestBodyTimeoutError, UnauthenticatedError, asBatonError, sendProblem } from './problems.ts';

export interface InboundOptions<V extends VerifiedSubject> {
  readonly service: string;
  /** The app's origin, `http://127.0.0.1:8080`. */
  readonly appOrigin: string;
  readonly forwardToken: boolean;
  readonly timeoutMs: number;
  /** How long the request body may take to arrive (./body-deadline.ts). */
  readonly bodyTimeoutMs: number;
  readonly maxTokenBytes: number;
  readonly ready: () => boolean;
  readonly policy: PolicyView;
  readonly verifier: TokenVerifier<V>;
  readonly verifiedCache: VerifiedTokenCache<V>;
  readonly handles: ContextHandles<V>;
  readonly forwarder: Forwarder;
  readonly inflight: Inflight;
  readonly metrics: SidecarMetrics;
  readonly logger: Logger;
  readonly subjectPseudonym?: SubjectPseudonym;
}

// The caller's proxy and method-override headers never reach the app (./untrusted-headers.ts).
const REPLACED: ReadonlySet<string> = UNTRUSTED_REQUEST_HEADERS;

export function createInboundHandler<V extends VerifiedSubject>(options: InboundOptions<V>): (req: IncomingMessage, res: ServerResponse) => void {
  const { service, logger, metrics } = options;
  // Tracing on: our span becomes the app's parent, so the caller's trace headers are replaced, not relayed.
  const traced = tracingActive();
  const tracer = batonTracer();
  const replaced = traced ? new Set([...REPLACED, ...propagationFields()]) : REPLACED;

  async function handle(req: IncomingMessage, res: ServerResponse, tokenSeen: { present: boolean }): Promise<string> {
    // 1. Read the policy and its version once, as one value: a reload mid-request must not change the answer halfway.
    const snapshot = options.policy.snapshot();
    if (snapshot === undefined || !options.ready()) throw new NotReadyError('expected a verified call-graph policy and the STS keys, have not got them yet');
    const { policy } = snapshot;
    const path = originFormPath(req.url);
    // A path the app's server could read as another one (`..;/`, `%252e`, `%00`, overlong UTF-8) is refused outright.
    refuseAmbiguousPath(path);

    // 2. The bearer token, limited before anything parses it.
    const token = bearerToken(req, options.maxTokenBytes);
    if (token === undefined) throw new UnauthenticatedError('expected an Authorization: Bearer token, got none');
    tokenSeen.present = true;

    // 3. Verify: issuer allow-list, keys, alg, typ, aud = this service, time claims (src/token/verifier.ts).
    const verified = await verify(token);
    // One user may hold only its share of the in-flight limit (./inflight.ts).
    if (verified.user && !options.inflight.share(res, 'subject', `${verified.kind}\n${verified.subject}`)) {
      throw new FairShareExceededError('expected this user to hold fewer requests in flight, its share of the inbound limit is used up');
    }

    // 4. The chain the token carries, against the policy for this method and path.
    checkEdge(
      policy,
      { chain: verified.chain, target: service, method: req.method, path, scopes: verified.scopes, acr: verified.acr, user: verified.user },
      { direction: 'inbound', service, subject: verified.subject, txn: verified.txn, policyVersion: snapshot.version, logger, metrics, pseudonym: options.subjectPseudonym },
    );

    // 5–6. Only the sidecar speaks in baton-* headers: the caller's are dropped, the verified identity added.
    const contextHandle = options.handles.issue(token, verified);
    const add = identityHeaders({ subject: verified.subject, chain: verified.chain, external: verified.kind === 'external', scopes: verified.scopes, txn: verified.txn, contextHandle });
    add.push(...proxyHeaders(req));
    if (req.headers['x-request-id'] === undefined) add.push('x-request-id', randomUUID());
    // Tracing: the app's spans are children of our SERVER span, which lasts until the app has answered.
    if (traced) add.push(...traceHeaders(context.active()));
    const headers = forwardRequestHeaders(req.rawHeaders, { dropAuthorization: !options.forwardToken, dropHost: false, drop: replaced, add });

    // 7. To the app, streaming — unless the body deadline has answered meanwhile.
    if (res.writableEnded) return String(res.statusCode);
    return String(await options.forwarder.forward(req, res, { origin: options.appOrigin, path: req.url as string, headers, timeoutMs: options.timeoutMs }));
  }

  async function verify(token: string): Promise<V> {
    const cached = options.verifiedCache.get(token, service);
    if (cached !== undefined) return cached;
    const verified = await options.verifier.verify(token, { audience: service });
    options.verifiedCache.set(token, service, verified);
    return verified;
  }

  return (req, res) => {
    if (!options.inflight.admit(res)) {
      metrics.request('inbound', 'overloaded');
      sendProblem(res, new OverloadedError('expected fewer requests in flight, the inbound limit is reached'), false);
      return;
    }
    if (!options.inflight.share(res, 'peer', req.socket.remoteAddress ?? 'unknown')) {
      metrics.request('inbound', 'fair_share');
      sendProblem(res, new FairShareExceededError('expected this peer to hold fewer requests in flight, its share of the inbound limit is used up'), false);
      return;
    }
    if (!traced) return run(req, res, undefined);
    // A SERVER span, child of the caller's traceparent; everything below (audit lines included) runs in it.
    const server = startServerSpan(tracer, req, (req.url ?? '/').split('?', 1)[0] as string);
    context.with(server.context, run, undefined, req, res, server.span);
  };

  function run(req: IncomingMessage, res: ServerResponse, span: Span | undefined): void {
    const tokenSeen = { present: false };
    let expired = false;
    // The app's timeout does not cover the upload: a body trickled byte by byte would hold its slot for ever.
    armBodyDeadline(req, res, options.bodyTimeoutMs, () => {
      expired = true;
      metrics.request('inbound', RequestBodyTimeoutError.code);
      res.shouldKeepAlive = false;
      sendProblem(res, new RequestBodyTimeoutError(`expected the request body within ${options.bodyTimeoutMs} ms, it was still arriving`), tokenSeen.present);
      if (span !== undefined) endHttpSpan(span, 'server', 408, RequestBodyTimeoutError.code);
    });
    handle(req, res, tokenSeen).then(
      (status) => {
        if (expired) return;
        metrics.request('inbound', status);
        if (span !== undefined) endHttpSpan(span, 'server', Number(status));
      },
      (error: unknown) => {
        if (expired) return;
        const problem = asBatonError(error);
        metrics.request('inbound', problem.code);
        if (problem.status >= 500) logger.warn({ event: 'inbound_failed', code: problem.code, status: problem.status, method: req.method }, problem.title);
        req.resume();
        sendProblem(res, problem, tokenSeen.present);
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
