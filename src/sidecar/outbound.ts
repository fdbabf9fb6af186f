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
import type { Exchange, RequestHead } from '../dataplane/exchange.ts';
import type { UpstreamOrigin } from '../dataplane/pool.ts';
import { type Span, context } from '@opentelemetry/api';
import { isServiceName } from '../core/service-name.ts';
import { TokenType } from '../core/token-types.ts';
import { writeAuditEvent } from '../telemetry/audit-event.ts';
import { recordExchangeCache } from '../telemetry/exchange-span.ts';
import { type EgressTarget, type Endpoint, endHttpSpan, endpointOf, startEgressSpan, traceHeaders } from '../telemetry/http-spans.ts';
import type { MeshClient, MeshGeneration } from '../identity/mesh-client.ts';
import type { ServiceMap } from '../identity/service-map.ts';
import type { Logger } from 'pino';
import type { SubjectPseudonym } from '../telemetry/subject-pseudonym.ts';
import { bearerToken } from './bearer.ts';
import type { VerifiedTokenCache } from '../token/verified-cache.ts';
import { tokenDigest } from '../token/token-digest.ts';
import type { AccessTokenVerifier } from '../token/verifier.ts';
import type { VerifiedToken } from '../token/verified-token.ts';
import type { Tracing } from '../telemetry/tracing.ts';
import type { ContextHandles, PolicyView, TokenExchanger } from './collaborators.ts';
import type { IssuedToken } from './exchange/exchanger.ts';
import { checkSidecarEdge } from './edge-check.ts';
import { StsUnavailableError } from './exchange/errors.ts';
import type { CertificateBinding } from './exchange/exchanger.ts';
import { type Forwarder, forwardRequestHeaders, upstreamOrigin } from './forward.ts';
import { IdentityHeader } from './identity-headers.ts';
import type { Inflight } from './inflight.ts';
import { FORWARDED, type RequestMetrics, type SidecarMetrics, UNKNOWN_TARGET } from './metrics.ts';
import { refuseAmbiguousPath } from './path-check.ts';
import { REQUEST_HEADER, type RequestIds } from './request-id.ts';
import { BadRequestError, NotReadyError } from '../core/errors.ts';
import { FairShareExceededError, IdentityUnavailableError, MethodNotAllowedError, OverloadedError, UnauthenticatedError, UnknownServiceError } from './errors.ts';
import { asBatonError, sendProblem } from './problems.ts';

export interface OutboundOptions {
  readonly service: string;
  /** The STS's issuer: the issuer of this service's own identity, for service-identity calls. */
  readonly stsIssuer?: string;
  /** Service name → upstream origin; services not listed go to `http(s)://<name>:<defaultUpstreamPort>`. */
  readonly upstreams: Readonly<Record<string, string>>;
  /** mtls mode: upstreams over mTLS, each expected to present its service's SPIFFE ID, and tokens bound to our certificate. */
  readonly mesh?: { readonly client: MeshClient; readonly map: ServiceMap } | undefined;
  readonly defaultUpstreamPort: number;
  readonly timeoutMs: number;
  readonly maxTokenBytes: number;
  readonly ready: () => boolean;
  readonly policy: PolicyView;
  readonly verifier: AccessTokenVerifier;
  readonly verifiedCache: VerifiedTokenCache;
  readonly handles: ContextHandles;
  readonly requestIds: RequestIds;
  readonly exchanger: () => TokenExchanger | undefined;
  readonly forwarder: Forwarder;
  readonly inflight: Inflight;
  readonly metrics: SidecarMetrics;
  readonly tracing: Tracing;
  readonly logger: Logger;
  readonly now: () => number;
  readonly subjectPseudonym?: SubjectPseudonym;
}

interface Subject {
  readonly subjectToken: string;
  readonly verified: VerifiedToken;
  /** The inbound request whose handle the app sent, if it sent one. */
  readonly request?: string;
}

const REPLACED: ReadonlySet<string> = new Set(['authorization']);

export function createOutboundHandler(options: OutboundOptions): (exchange: Exchange) => void {
  const { service, logger, metrics } = options;
  // Tracing on: the upstream's span is a child of ours, so the app's trace headers are replaced.
  const { enabled: traced, tracer } = options.tracing;
  const replaced = traced ? new Set([...REPLACED, ...options.tracing.propagationFields]) : REPLACED;
  const { mesh } = options;
  const scheme = mesh === undefined ? 'http' : 'https';
  // mtls: the upstream's certificate must name the target's SPIFFE ID, or the handshake fails before a token is written.
  const upstream = (name: string, url: string): Upstream => {
    mesh?.client.expect(url, mesh.map.idOf(name));
    return upstreamOf(new URL(url), metrics.requests('outbound', name));
  };
  const upstreams = new Map(Object.entries(options.upstreams).map(([name, url]) => [name, upstream(name, url)]));
  // Only names the policy knows get here, so the memo (and the metric series it holds) is bounded by the call graph.
  const upstreamFor = (name: string): Upstream => {
    let found = upstreams.get(name);
    if (found === undefined) upstreams.set(name, (found = upstream(name, `${scheme}://${name}:${options.defaultUpstreamPort}`)));
    return found;
  };
  const untargeted = metrics.requests('outbound', UNKNOWN_TARGET);

  async function handle(req: Exchange, call: { requests: RequestMetrics }): Promise<number> {
    // 1. Read the policy and its version once, as one value, for the whole request.
    const snapshot = options.policy.snapshot();
    if (snapshot === undefined || !options.ready()) throw new NotReadyError('expected a verified call-graph policy and the STS keys, have not got them yet');
    const { policy } = snapshot;

    // 2. Which service the app is calling, and where it lives. Refused before any exchange when unknown.
    const target = requestTarget(req);
    if (!policy.hasService(target.service)) throw new UnknownServiceError(`expected a service the call-graph policy names, got '${target.service}'`);
    const upstream = upstreamFor(target.service);
    // mtls: the certificate generation this request uses, read once: the token is bound to it and travels on it.
    const generation = mesh?.client.current();
    if (mesh !== undefined && generation === undefined) throw new IdentityUnavailableError('expected a valid workload certificate for mTLS, have none (missing or expired); nothing is sent in plaintext');
    const binding: CertificateBinding | undefined = generation === undefined ? undefined : { thumbprint: generation.svid.thumbprint, dispatcher: generation.agent };
    const origin = generation === undefined ? upstream.plain : upstream.over(generation);
    call.requests = upstream.requests;
    const pathOnly = target.path.split('?', 1)[0] as string;
    refuseAmbiguousPath(pathOnly);

    // 3. On whose behalf: the handle the app was given, a token it forwarded, or nobody (service identity).
    //    A call made with a handle belongs to the request that handle came with; any other starts one.
    const subject = await findSubject(req);
    const request = subject?.request ?? options.requestIds.mint();
    // One user may hold only its share of the outbound limit (./inflight.ts); service-identity calls are the app's own.
    if (subject?.verified.user === true && !options.inflight.share(req, 'subject', `${subject.verified.kind}\n${subject.verified.subjectIssuer}\n${subject.verified.subject}`)) {
      throw new FairShareExceededError('expected this user to hold fewer calls in flight, its share of the outbound limit is used up');
    }

    // 4. The edge this call would add, checked before the STS is asked (it would refuse too, but later).
    checkSidecarEdge(
      policy,
      subject === undefined
        ? // The service token's scopes are not known before it is minted; the most the STS could grant on this edge is.
          { chain: [service], target: target.service, method: req.method, path: pathOnly, scopes: policy.usableScopes(service, target.service) ?? new Set(), user: false, subjectIssuer: options.stsIssuer }
        : {
            chain: [...(subject.verified.kind === 'mesh' ? subject.verified.chain : []), service],
            target: target.service,
            method: req.method,
            path: pathOnly,
            scopes: subject.verified.scopes,
            acr: subject.verified.acr,
            user: subject.verified.user,
            subjectIssuer: subject.verified.subjectIssuer,
          },
      { direction: 'outbound', service, subject: subject?.verified.subject ?? service, subjectIssuer: subject?.verified.subjectIssuer ?? options.stsIssuer, txn: subject?.verified.txn, request, policyVersion: snapshot.version, logger, metrics, pseudonym: options.subjectPseudonym },
    );

    // 5. A token for the target: exchanged (RFC 8693) for a subject, client credentials otherwise.
    const issued = await obtainToken(target.service, subject, binding);

    // 6. Our Authorization replaces the app's; baton-* and proxy credentials never leave the pod.
    const headers = forwardRequestHeaders(req.head, { dropAuthorization: true, drop: replaced, add: ['authorization', `Bearer ${issued.accessToken}`, REQUEST_HEADER, request, ...(traced ? traceHeaders(context.active()) : [])] });

    // 7. To the upstream, streaming; its answer goes back as it came.
    return options.forwarder.forward(req, { origin, path: target.path, host: origin.authority, headers, timeoutMs: options.timeoutMs });
  }

  async function findSubject(req: Exchange): Promise<Subject | undefined> {
    const handle = req.headers[IdentityHeader.context];
    if (handle !== undefined) {
      const opened = typeof handle === 'string' ? options.handles.resolve(handle) : undefined;
      if (opened === undefined) throw new UnauthenticatedError('expected a live baton-context handle from an inbound request, got an unknown, altered or expired one');
      // The handle's token was verified for this service at the inbound port; the cache usually still holds it.
      return { subjectToken: opened.subjectToken, verified: await verifiedFor(opened.subjectToken), request: opened.requestId };
    }
    const token = bearerToken(req, options.maxTokenBytes);
    if (token === undefined) return undefined;
    // A token the app forwards must have been addressed to this service: it is what the app was given.
    return { subjectToken: token, verified: await verifiedFor(token) };
  }

  async function verifiedFor(token: string): Promise<VerifiedToken> {
    const digest = tokenDigest(token);
    let verified = options.verifiedCache.get(token, service, digest);
    if (verified === undefined) {
      verified = await options.verifier.verify(token, { audience: service });
      options.verifiedCache.set(token, service, verified, digest);
    }
    return verified;
  }

  async function obtainToken(audience: string, subject: Subject | undefined, binding: CertificateBinding | undefined): Promise<IssuedToken> {
    const exchanger = options.exchanger();
    if (exchanger === undefined) throw new StsUnavailableError('expected the STS token endpoint to be known, discovery has not succeeded yet');
    const started = performance.now();
    const issued =
      subject === undefined
        ? await exchanger.serviceToken({ audience, binding })
        : await exchanger.exchange({ subjectToken: subject.subjectToken, subjectTokenType: TokenType.accessToken, audience, binding });
    metrics.exchange(issued.cached, (performance.now() - started) / 1000);
    if (traced) recordExchangeCache(issued.cached);
    return issued;
  }

  return (req) => {
    const started = performance.now();
    if (!options.inflight.admit(req)) {
      const overloaded = new OverloadedError('expected fewer requests in flight, the outbound limit is reached');
      sendProblem(req, overloaded, false);
      untargeted.done(overloaded.status, overloaded.code, (performance.now() - started) / 1000);
      return;
    }
    if (!traced) return run(req, undefined, started);
    // One CLIENT span per call out, child of the app's traceparent if it sent one; the exchange and the upstream hang under it.
    const egress = startEgressSpan(tracer, req, egressTargetOf(req));
    context.with(egress.context, run, undefined, req, egress.span, started);
  };

  /** Tracing: where a call goes, for its span's first attributes; undefined when step 2 will refuse it. */
  function egressTargetOf(req: Exchange): EgressTarget | undefined {
    try {
      const target = requestTarget(req);
      if (options.policy.snapshot()?.policy.hasService(target.service) !== true) return undefined;
      return { service: target.service, upstream: upstreamFor(target.service), target: target.path };
    } catch {
      return undefined;
    }
  }

  function run(req: Exchange, span: Span | undefined, started: number): void {
    // The target's series once the target is known; refusals before that count under UNKNOWN_TARGET.
    const call = { requests: untargeted };
    handle(req, call).then(
      (status) => {
        call.requests.done(status, FORWARDED, (performance.now() - started) / 1000);
        if (span !== undefined) endHttpSpan(span, 'client', status);
      },
      (error: unknown) => {
        const problem = asBatonError(error);
        if (problem.status >= 500) writeAuditEvent(logger, { event: 'request_failed', component: 'sidecar', direction: 'outbound', code: problem.code, status: problem.status, method: req.method }, problem.title);
        sendProblem(req, problem, req.headers.authorization !== undefined || req.headers[IdentityHeader.context] !== undefined);
        call.requests.done(problem.status, problem.code, (performance.now() - started) / 1000);
        if (span !== undefined) endHttpSpan(span, 'client', problem.status, problem.code);
      },
    );
  }
}

interface Upstream extends Endpoint {
  /** This target's request series, resolved once. */
  readonly requests: RequestMetrics;
  /** Plaintext mode: where the data plane dials it. */
  readonly plain: UpstreamOrigin;
  /** mtls: where the data plane dials it with a certificate generation (one pool per generation). */
  over(generation: MeshGeneration): UpstreamOrigin;
}

function upstreamOf(url: URL, requests: RequestMetrics): Upstream {
  let last: { thumbprint: string; origin: UpstreamOrigin } | undefined;
  return {
    ...endpointOf(url),
    requests,
    plain: upstreamOrigin(url),
    over(generation) {
      if (last?.thumbprint !== generation.svid.thumbprint) last = { thumbprint: generation.svid.thumbprint, origin: upstreamOrigin(url, generation.connectOptions(url.origin), generation.svid.thumbprint) };
      return last.origin;
    },
  };
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
export function requestTarget(req: RequestHead): RequestTarget {
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
