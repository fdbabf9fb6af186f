/**
 * The outbound port: the app calls other services through it, in
 * absolute-form (`GET http://payments/charges`, what an `HTTP_PROXY`
 * client sends) or origin-form with `Host: payments`. Around the steps
 * every request takes (./pipeline.ts: admit, span, ready, problem,
 * metrics), each outbound call goes through these (DESIGN.md, "Sidecar",
 * outbound):
 *
 *   0. CONNECT service:port opens a tunnel (undici's ProxyAgent, Node's fetch
 *   with NODE_USE_ENV_PROXY=1); the requests in it take the steps below →
 *   1. target service and its upstream (and, in mtls mode, the certificate
 *   generation the call travels on) → 2. unambiguous path → 3. subject
 *   (baton-context handle, else a forwarded bearer token, else this
 *   service's own identity) and this user's share → 4. edge check (before
 *   any exchange: fail fast) → 5. token exchange (RFC 8693) or client
 *   credentials → 6. Authorization: Bearer <new token>, baton-* stripped →
 *   7. forward, streaming
 *
 * The upstream's answer comes back unchanged, redirects included: the
 * sidecar never follows one, since the next hop would need its own token.
 */
import { context } from '@opentelemetry/api';
import type { RequestStream } from '../dataplane/stream.ts';
import type { UpstreamOrigin } from '../dataplane/forward-call.ts';
import { MethodNotAllowedError, NotReadyError } from '../core/errors.ts';
import type { MeshClient, MeshGeneration } from '../identity/mesh-client.ts';
import type { ServiceMap } from '../identity/service-map.ts';
import {
  type EgressTarget,
  type Endpoint,
  endpointOf,
  startEgressSpan,
  traceHeaders,
} from '../telemetry/http-spans.ts';
import type { PolicySnapshot, SidecarContext } from './collaborators.ts';
import { REQUEST_HEADER } from './context-handles.ts';
import { checkSidecarEdge } from './edge-check.ts';
import type { CertificateBinding, TokenExchanger } from './exchange/exchanger.ts';
import { FairShareExceededError, UnknownServiceError, UpstreamTimeoutError } from './errors.ts';
import { upstreamOrigin } from './pipeline.ts';
import { forwardRequestHeaders, IdentityHeader } from './headers.ts';
import { type RequestMetrics, UNKNOWN_TARGET } from './metrics.ts';
import { createPipeline, type Inflight } from './pipeline.ts';
import { connectTarget, grpcDeadlineMs, refuseAmbiguousPath, requestTarget } from './request.ts';
import { findSubject, obtainToken } from './subject.ts';

export interface OutboundOptions {
  /** The STS's issuer: the issuer of this service's own identity, for service-identity calls. */
  readonly stsIssuer?: string;
  /** Service name → upstream origin; services not listed go to `http(s)://<name>:<defaultUpstreamPort>`. */
  readonly upstreams: Readonly<Record<string, string>>;
  /** mtls mode: upstreams over mTLS, each expected to present its service's SPIFFE ID, and tokens bound to our certificate. */
  readonly mesh?: { readonly client: MeshClient; readonly map: ServiceMap } | undefined;
  readonly defaultUpstreamPort: number;
  readonly timeoutMs: number;
  readonly exchanger: () => TokenExchanger | undefined;
  readonly inflight: Inflight;
}

const REPLACED: ReadonlySet<string> = new Set(['authorization']);

export function createOutboundHandler(ctx: SidecarContext, options: OutboundOptions): (stream: RequestStream) => void {
  const { service, logger, metrics } = ctx;
  // Tracing on: the upstream's span is a child of ours, so the app's trace headers are replaced.
  const { enabled: traced, tracer } = ctx.tracing;
  const replaced = traced ? new Set([...REPLACED, ...ctx.tracing.propagationFields]) : REPLACED;
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
    if (found === undefined)
      upstreams.set(name, (found = upstream(name, `${scheme}://${name}:${options.defaultUpstreamPort}`)));
    return found;
  };
  const untargeted = metrics.requests('outbound', UNKNOWN_TARGET);

  return createPipeline(
    {
      direction: 'outbound',
      // Refusals before the target is known count under UNKNOWN_TARGET; then under the target's series.
      requests: untargeted,
      inflight: options.inflight,
      sharePerPeer: false,
      // One CLIENT span per call out, child of the app's traceparent if it sent one; the exchange and the upstream hang under it.
      ...(traced
        ? { startSpan: (stream: RequestStream) => startEgressSpan(tracer, stream, egressTargetOf(stream)) }
        : {}),
      run,
    },
    ctx,
  );

  async function run(
    req: RequestStream,
    call: { requests: RequestMetrics; credential: boolean },
    snapshot: PolicySnapshot,
  ): Promise<number> {
    const { policy } = snapshot;
    call.credential = req.headers.authorization !== undefined || req.headers[IdentityHeader.context] !== undefined;

    // 0. CONNECT service:port: a tunnel whose requests are read, checked and exchanged one by one, like any other.
    if (req.method === 'CONNECT') {
      if (req.protocol !== 'http/1.1')
        throw new MethodNotAllowedError('expected CONNECT over HTTP/1.1; HTTP/2 tunnels are not opened', {
          reason: 'connect',
        });
      const service = connectTarget(req);
      if (!policy.hasService(service))
        throw new UnknownServiceError(`expected a service the call-graph policy names, got '${service}'`);
      call.requests = upstreamFor(service).requests;
      req.openTunnel();
      return 200;
    }

    // 1. Which service the app is calling, and where it lives. Refused before any exchange when unknown.
    const target = requestTarget(req);
    if (!policy.hasService(target.service))
      throw new UnknownServiceError(`expected a service the call-graph policy names, got '${target.service}'`);
    const upstream = upstreamFor(target.service);
    // mtls: the certificate generation this request uses, read once: the token is bound to it and travels on it.
    const generation = mesh?.client.current();
    if (mesh !== undefined && generation === undefined)
      throw new NotReadyError(
        'expected a valid workload certificate for mTLS, have none (missing or expired); nothing is sent in plaintext',
        { reason: 'identity' },
      );
    const binding: CertificateBinding | undefined =
      generation === undefined ? undefined : { thumbprint: generation.svid.thumbprint, dispatcher: generation.agent };
    const origin = generation === undefined ? upstream.plain : upstream.over(generation);
    call.requests = upstream.requests;
    const pathOnly = target.path.split('?', 1)[0] as string;
    // 2. A path the upstream's server could read as another one is refused outright.
    refuseAmbiguousPath(pathOnly);

    // 3. On whose behalf: the handle the app was given, a token it forwarded, or nobody (service identity).
    //    A call made with a handle belongs to the request that handle came with; any other starts one.
    const subject = await findSubject(ctx, req);
    const request = subject?.request ?? ctx.requestIds.mint();
    // One user may hold only its share of the outbound limit (./pipeline.ts); service-identity calls are the app's own.
    if (
      subject?.verified.user === true &&
      !options.inflight.share(
        req,
        'subject',
        `${subject.verified.kind}\n${subject.verified.subjectIssuer}\n${subject.verified.subject}`,
      )
    ) {
      throw new FairShareExceededError(
        'expected this user to hold fewer calls in flight, its share of the outbound limit is used up',
      );
    }

    // 4. The edge this call would add, checked before the STS is asked (it would refuse too, but later).
    checkSidecarEdge(
      policy,
      subject === undefined
        ? // The service token's scopes are not known before it is minted; the most the STS could grant on this edge is.
          {
            chain: [service],
            target: target.service,
            method: req.method,
            path: pathOnly,
            scopes: policy.usableScopes(service, target.service) ?? new Set(),
            user: false,
            subjectIssuer: options.stsIssuer,
          }
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
      {
        direction: 'outbound',
        service,
        subject: subject?.verified.subject ?? service,
        subjectIssuer: subject?.verified.subjectIssuer ?? options.stsIssuer,
        txn: subject?.verified.txn,
        request,
        policyVersion: snapshot.version,
        logger,
        metrics,
        traced,
        pseudonym: ctx.subjectPseudonym,
      },
    );

    // 5. A token for the target: exchanged (RFC 8693) for a subject, client credentials otherwise; a gRPC call's
    //    deadline (grpc-timeout) bounds the exchange and the forward alike.
    const deadline = req.grpc ? grpcDeadlineMs(req) : undefined;
    const started = performance.now();
    const issued = await withinDeadline(
      obtainToken(ctx, options.exchanger(), target.service, subject, binding),
      deadline,
    );
    const timeoutMs = Math.min(
      options.timeoutMs,
      deadline === undefined ? Infinity : Math.max(1, deadline - (performance.now() - started)),
    );

    // 6. Our Authorization replaces the app's; baton-* and proxy credentials never leave the pod.
    const headers = forwardRequestHeaders(req.head, {
      dropAuthorization: true,
      drop: replaced,
      add: [
        'authorization',
        `Bearer ${issued.accessToken}`,
        REQUEST_HEADER,
        request,
        ...(traced ? traceHeaders(context.active()) : []),
      ],
    });

    // 7. To the upstream, streaming; its answer goes back as it came.
    return ctx.forwarder.forward(req, { origin, path: target.path, host: origin.authority, headers, timeoutMs });
  }

  /** Tracing: where a call goes, for its span's first attributes; undefined when step 2 will refuse it. */
  function egressTargetOf(req: RequestStream): EgressTarget | undefined {
    try {
      const target = requestTarget(req);
      if (ctx.policy.snapshot()?.policy.hasService(target.service) !== true) return undefined;
      return { service: target.service, upstream: upstreamFor(target.service), target: target.path };
    } catch {
      return undefined;
    }
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
      if (last?.thumbprint !== generation.svid.thumbprint)
        last = {
          thumbprint: generation.svid.thumbprint,
          origin: upstreamOrigin(url, generation.connectOptions(url.origin), generation.svid.thumbprint),
        };
      return last.origin;
    },
  };
}

/** `work`, or a 504 (gRPC DEADLINE_EXCEEDED) once `deadlineMs` has passed; no deadline, no race. */
function withinDeadline<T>(work: Promise<T>, deadlineMs: number | undefined): Promise<T> {
  if (deadlineMs === undefined) return work;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new UpstreamTimeoutError(
            `expected a token for the call within its gRPC deadline (${deadlineMs} ms), the exchange took longer`,
          ),
        ),
      deadlineMs,
    );
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}
