/**
 * The outbound port: the app calls other services through it, in
 * absolute-form (`GET http://payments/charges`, what an `HTTP_PROXY`
 * client sends) or origin-form with `Host: payments`. Each request goes
 * through these steps (DESIGN.md, "Sidecar", outbound):
 *
 *   ready → admit → target service → upstream → unambiguous path →
 *   subject (baton-context handle, else a forwarded bearer token, else
 *   this service's own identity) → the user's share → edge check (before any exchange: fail fast) → exchange →
 *   Authorization: Bearer <new token>, baton-* stripped → forward, streaming
 *
 * The upstream's answer comes back unchanged, redirects included: the
 * sidecar never follows one, since the next hop would need its own token.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Span, context } from '@opentelemetry/api';
import { isServiceName } from '../core/service-name.ts';
import { TokenType } from '../core/token-types.ts';
import { recordExchangeCache } from '../telemetry/exchange-span.ts';
import { type Endpoint, batonTracer, describeEgressTarget, endHttpSpan, endpointOf, propagationFields, startEgressSpan, traceHeaders, tracingActive } from '../telemetry/http-spans.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { SubjectPseudonym } from '../telemetry/subject-pseudonym.ts';
import { bearerToken } from './bearer.ts';
import type { ContextHandles, IssuedToken, PolicyView, TokenExchanger, TokenVerifier, VerifiedSubject, VerifiedTokenCache } from './collaborators.ts';
import { checkEdge } from './edge-check.ts';
import { StsUnavailableError } from './exchange/errors.ts';
import { type Forwarder, forwardRequestHeaders } from './forward.ts';
import { IdentityHeader } from './identity-headers.ts';
import type { Inflight } from './inflight.ts';
import type { SidecarMetrics } from './metrics.ts';
import { refuseAmbiguousPath } from './path-check.ts';
import {
  BadRequestError,
  FairShareExceededError,
  MethodNotAllowedError,
  NotReadyError,
  OverloadedError,
  UnauthenticatedError,
  UnknownServiceError,
  asBatonError,
  sendProblem,
} from './problems.ts';

export interface OutboundOptions<V extends VerifiedSubject> {
  readonly service: string;
  /** Service name → upstream origin; services not listed go to `http://<name>:<defaultUpstreamPort>`. */
  readonly upstreams: Readonly<Record<string, string>>;
  readonly defaultUpstreamPort: number;
  readonly timeoutMs: number;
  readonly maxTokenBytes: number;
  readonly ready: () => boolean;
  readonly policy: PolicyView;
  readonly verifier: TokenVerifier<V>;
  readonly verifiedCache: VerifiedTokenCache<V>;
  readonly handles: ContextHandles<V>;
  readonly exchanger: () => TokenExchanger | undefined;
  readonly forwarder: Forwarder;
  readonly inflight: Inflight;
  readonly metrics: SidecarMetrics;
  readonly logger: Logger;
  readonly now: () => number;
  readonly subjectPseudonym?: SubjectPseudonym;
}

interface Subject<V> {
  readonly subjectToken: string;
  readonly verified: V;
}

const REPLACED: ReadonlySet<string> = new Set(['authorization']);

export function createOutboundHandler<V extends VerifiedSubject>(options: OutboundOptions<V>): (req: IncomingMessage, res: ServerResponse) => void {
  const { service, logger, metrics } = options;
  // Tracing on: the upstream's span is a child of ours, so the app's trace headers are replaced.
  const traced = tracingActive();
  const tracer = batonTracer();
  const replaced = traced ? new Set([...REPLACED, ...propagationFields()]) : REPLACED;
  const upstreams = new Map(Object.entries(options.upstreams).map(([name, url]) => [name, upstreamOf(new URL(url))]));
  // Only names the policy knows get here, so the memo is bounded by the call graph.
  const upstreamFor = (name: string): Upstream => {
    let upstream = upstreams.get(name);
    if (upstream === undefined) upstreams.set(name, (upstream = upstreamOf(new URL(`http://${name}:${options.defaultUpstreamPort}`))));
    return upstream;
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<string> {
    // 1. Read the policy and its version once, as one value, for the whole request.
    const snapshot = options.policy.snapshot();
    if (snapshot === undefined || !options.ready()) throw new NotReadyError('expected a verified call-graph policy and the STS keys, have not got them yet');
    const { policy } = snapshot;

    // 2. Which service the app is calling, and where it lives. Refused before any exchange when unknown.
    const target = requestTarget(req);
    if (!policy.hasService(target.service)) throw new UnknownServiceError(`expected a service the call-graph policy names, got '${target.service}'`);
    const upstream = upstreamFor(target.service);
    const pathOnly = target.path.split('?', 1)[0] as string;
    refuseAmbiguousPath(pathOnly);
    if (traced) describeEgressTarget(target.service, upstream, pathOnly);

    // 3. On whose behalf: the handle the app was given, a token it forwarded, or nobody (service identity).
    const subject = await findSubject(req);
    // One user may hold only its share of the outbound limit (./inflight.ts); service-identity calls are the app's own.
    if (subject?.verified.user === true && !options.inflight.share(res, 'subject', `${subject.verified.kind}\n${subject.verified.subject}`)) {
      throw new FairShareExceededError('expected this user to hold fewer calls in flight, its share of the outbound limit is used up');
    }

    // 4. The edge this call would add, checked before the STS is asked (it would refuse too, but later).
    checkEdge(
      policy,
      subject === undefined
        ? // The service token's scopes are not known before it is minted; the most the STS could grant on this edge is.
          { chain: [service], target: target.service, method: req.method, path: pathOnly, scopes: policy.usableScopes(service, target.service) ?? new Set(), user: false }
        : {
            chain: [...(subject.verified.kind === 'mesh' ? subject.verified.chain : []), service],
            target: target.service,
            method: req.method,
            path: pathOnly,
            scopes: subject.verified.scopes,
            acr: subject.verified.acr,
            user: subject.verified.user,
          },
      { direction: 'outbound', service, subject: subject?.verified.subject ?? service, txn: subject?.verified.txn, policyVersion: snapshot.version, logger, metrics, pseudonym: options.subjectPseudonym },
    );

    // 5. A token for the target: exchanged (RFC 8693) for a subject, client credentials otherwise.
    const issued = await obtainToken(target.service, subject);

    // 6. Our Authorization replaces the app's; baton-* and proxy credentials never leave the pod.
    const headers = forwardRequestHeaders(req.rawHeaders, { dropAuthorization: true, dropHost: true, drop: replaced, add: ['authorization', `Bearer ${issued.accessToken}`, ...(traced ? traceHeaders(context.active()) : [])] });

    // 7. To the upstream, streaming; its answer goes back as it came.
    return String(await options.forwarder.forward(req, res, { origin: upstream.origin, path: target.path, headers, timeoutMs: options.timeoutMs }));
  }

  async function findSubject(req: IncomingMessage): Promise<Subject<V> | undefined> {
    const handle = req.headers[IdentityHeader.context];
    if (handle !== undefined) {
      const resolved = typeof handle === 'string' ? options.handles.resolve(handle) : undefined;
      if (resolved === undefined) throw new UnauthenticatedError('expected a live baton-context handle from an inbound request, got an unknown or expired one');
      return resolved;
    }
    const token = bearerToken(req, options.maxTokenBytes);
    if (token === undefined) return undefined;
    // A token the app forwards must have been addressed to this service: it is what the app was given.
    let verified = options.verifiedCache.get(token, service);
    if (verified === undefined) {
      verified = await options.verifier.verify(token, { audience: service });
      options.verifiedCache.set(token, service, verified);
    }
    return { subjectToken: token, verified };
  }

  async function obtainToken(audience: string, subject: Subject<V> | undefined): Promise<IssuedToken> {
    const exchanger = options.exchanger();
    if (exchanger === undefined) throw new StsUnavailableError('expected the STS token endpoint to be known, discovery has not succeeded yet');
    const started = options.now();
    const issued =
      subject === undefined
        ? await exchanger.serviceToken({ audience })
        : await exchanger.exchange({ subjectToken: subject.subjectToken, subjectTokenType: TokenType.accessToken, audience });
    metrics.exchangeDuration((options.now() - started) / 1000);
    metrics.tokenCache(issued.cached);
    if (traced) recordExchangeCache(issued.cached);
    return issued;
  }

  return (req, res) => {
    if (!options.inflight.admit(res)) {
      metrics.request('outbound', 'overloaded');
      sendProblem(res, new OverloadedError('expected fewer requests in flight, the outbound limit is reached'), false);
      return;
    }
    if (!traced) return run(req, res, undefined);
    // One CLIENT span per call out, child of the app's traceparent if it sent one; the exchange and the upstream hang under it.
    const egress = startEgressSpan(tracer, req);
    context.with(egress.context, run, undefined, req, res, egress.span);
  };

  function run(req: IncomingMessage, res: ServerResponse, span: Span | undefined): void {
    handle(req, res).then(
      (status) => {
        metrics.request('outbound', status);
        if (span !== undefined) endHttpSpan(span, 'client', Number(status));
      },
      (error: unknown) => {
        const problem = asBatonError(error);
        metrics.request('outbound', problem.code);
        if (problem.status >= 500) logger.warn({ event: 'outbound_failed', code: problem.code, status: problem.status, method: req.method }, problem.title);
        req.resume();
        sendProblem(res, problem, req.headers.authorization !== undefined || req.headers[IdentityHeader.context] !== undefined);
        if (span !== undefined) endHttpSpan(span, 'client', problem.status, problem.code);
      },
    );
  }
}

interface Upstream extends Endpoint {
  readonly origin: string;
}

function upstreamOf(url: URL): Upstream {
  return { origin: url.origin, ...endpointOf(url) };
}

export interface RequestTarget {
  readonly service: string;
  /** Origin-form path with query, as sent on. */
  readonly path: string;
}

/**
 * The service and path of an outbound request. Only `http://` is
 * intercepted: an `https://` URL or a CONNECT tunnel would hide the request
 * from the sidecar, so both are refused rather than passed through blind.
 */
export function requestTarget(req: IncomingMessage): RequestTarget {
  const url = req.url ?? '';
  if (req.method === 'CONNECT') throw new MethodNotAllowedError('expected a plain http:// request; CONNECT tunnels (https through a proxy) are not intercepted');
  let authority: string;
  let path: string;
  if (url.charCodeAt(0) === 0x2f) {
    const host = req.headers.host;
    if (host === undefined || host === '') throw new BadRequestError('expected a Host header naming the target service, got none');
    authority = host;
    path = url;
  } else if (/^http:\/\//i.test(url)) {
    const rest = url.slice(7);
    const end = rest.search(/[/?#]/);
    authority = end === -1 ? rest : rest.slice(0, end);
    path = end === -1 ? '/' : rest.charCodeAt(end) === 0x2f ? rest.slice(end) : `/${rest.slice(end)}`;
    if (path.includes('#')) throw new BadRequestError('expected no fragment in the request target');
  } else {
    throw new BadRequestError('expected an http:// absolute URL or an origin-form path with Host; https:// is not intercepted');
  }
  if (authority.includes('@')) throw new BadRequestError('expected no userinfo in the target authority');
  const name = authority.replace(/:\d+$/, '').toLowerCase();
  if (!isServiceName(name)) throw new BadRequestError(`expected the host to be a service name (DNS-1123 label), got '${name.slice(0, 64)}'`);
  return { service: name, path };
}
