/**
 * The inbound port: what the pod's Service targets. Around the steps every
 * request takes (./pipeline.ts: admit, span, ready, problem, metrics),
 * each inbound request goes through these, in this order (DESIGN.md,
 * "Sidecar"):
 *
 *   1. unambiguous path → 2. TLS peer (its SPIFFE ID maps to a service) →
 *   3. bearer token (size, alphabet) → 4. verify (cached until exp) and
 *   this user's share → 5. certificate binding (RFC 8705 §3) →
 *   6. chain check against the policy → 7. strip baton-* and untrusted
 *   proxy headers, add the identity headers and the context handle →
 *   8. forward to the app, streaming both ways
 *
 * Any step may stop the request by throwing its refusal; nothing after a
 * failed step runs.
 */
import { randomUUID } from 'node:crypto';
import { context } from '@opentelemetry/api';
import type { RequestStream } from '../dataplane/stream.ts';
import type { UpstreamOrigin } from '../dataplane/forward-call.ts';
import { startServerSpan, traceHeaders } from '../telemetry/http-spans.ts';
import { tokenDigest } from '../token/verified-cache.ts';
import type { SidecarContext } from './collaborators.ts';
import { REQUEST_HEADER } from './context-handles.ts';
import { FairShareExceededError, UnauthenticatedError } from './errors.ts';
import { forwardRequestHeaders, proxyHeaders, verifiedIdentityHeaders, UNTRUSTED_REQUEST_HEADERS } from './headers.ts';
import type { RequestMetrics } from './metrics.ts';
import { createPipeline, type Inflight } from './pipeline.ts';
import { bearerToken, grpcDeadlineMs, originFormPath, refuseAmbiguousPath } from './request.ts';
import { verifiedFor } from './subject.ts';
import { checkSidecarEdge, checkTokenBinding, type Listener, type Peer } from './edge-check.ts';

export interface InboundOptions {
  /** The listener this handler serves: plaintext mode, the mTLS port, or an entrypoint's plaintext port in mtls mode. */
  readonly listener: Listener;
  /** The verified TLS peer of a request (./edge-check.ts `peerOf`); absent in plaintext mode. */
  readonly peerOf?: (stream: RequestStream) => Peer | undefined;
  /** The app, as the data plane dials it (`http://127.0.0.1:8080`). */
  readonly app: UpstreamOrigin;
  readonly forwardToken: boolean;
  readonly timeoutMs: number;
  /** How long the request body may take to arrive (./pipeline.ts). */
  readonly bodyTimeoutMs: number;
  readonly inflight: Inflight;
}

export function createInboundHandler(ctx: SidecarContext, options: InboundOptions): (stream: RequestStream) => void {
  const { service, metrics } = ctx;
  // Tracing on: our span becomes the app's parent, so the caller's trace headers are replaced, not relayed.
  const { enabled: traced, tracer } = ctx.tracing;
  const replaced = traced
    ? new Set([...UNTRUSTED_REQUEST_HEADERS, ...ctx.tracing.propagationFields])
    : UNTRUSTED_REQUEST_HEADERS;
  const requests: RequestMetrics = metrics.requests('inbound', service);

  return createPipeline(
    {
      direction: 'inbound',
      requests,
      inflight: options.inflight,
      sharePerPeer: true,
      bodyTimeoutMs: options.bodyTimeoutMs,
      // A SERVER span, child of the caller's traceparent.
      ...(traced
        ? {
            startSpan: (stream: RequestStream) =>
              startServerSpan(tracer, stream, stream.url.split('?', 1)[0] as string),
          }
        : {}),
      async run(req, call, { policy, version }) {
        // 1. A path the app's server could read as another one (`..;/`, `%252e`, `%00`, overlong UTF-8) is refused outright.
        const path = originFormPath(req.url);
        refuseAmbiguousPath(path);

        // 2. Who is on the other end of the TLS connection: a certificate that maps to no service is refused.
        const peer = options.peerOf?.(req);

        // 3. The bearer token, limited before anything parses it.
        const token = bearerToken(req, ctx.maxTokenBytes);
        if (token === undefined) throw new UnauthenticatedError('expected an Authorization: Bearer token, got none');
        call.credential = true;

        // 4. Verify: issuer allow-list, keys, alg, typ, aud = this service, time claims (src/token/verifier.ts).
        //    The token is hashed once, for the verified-token cache. One user may hold only its share of the limit.
        const digest = tokenDigest(token);
        const verified = ctx.verifiedCache.get(token, service, digest) ?? (await verifiedFor(ctx, token, digest));
        if (
          verified.user &&
          !options.inflight.share(req, 'subject', `${verified.kind}\n${verified.subjectIssuer}\n${verified.subject}`)
        ) {
          throw new FairShareExceededError(
            'expected this user to hold fewer requests in flight, its share of the inbound limit is used up',
          );
        }

        // 5. RFC 8705 §3: a bound token only with its certificate, from the workload it names as caller; per request, never cached.
        checkTokenBinding(verified, peer, options.listener);

        // 6. The chain the token carries, against the policy for this method and path. The request id continues the
        //    caller's when the caller is a mesh service, and starts here otherwise.
        const request =
          (verified.kind === 'mesh' ? ctx.requestIds.accept(req.headers[REQUEST_HEADER]) : undefined) ??
          ctx.requestIds.mint();
        checkSidecarEdge(
          policy,
          {
            chain: verified.chain,
            target: service,
            method: req.method,
            path,
            scopes: verified.scopes,
            acr: verified.acr,
            user: verified.user,
            subjectIssuer: verified.subjectIssuer,
          },
          {
            direction: 'inbound',
            service,
            subject: verified.subject,
            subjectIssuer: verified.subjectIssuer,
            txn: verified.txn,
            request,
            policyVersion: version,
            logger: ctx.logger,
            metrics,
            traced,
            pseudonym: ctx.subjectPseudonym,
            ...(peer === undefined ? {} : { peer: peer.spiffeId }),
            bound: verified.confirmation !== undefined,
          },
        );

        // 7. Only the sidecar speaks in baton-* headers: the caller's are dropped, the verified identity added.
        //    The handle carries the request id, so the app's outbound calls are logged under this request.
        const contextHandle = ctx.handles.issue(token, verified, request);
        const add = verifiedIdentityHeaders(verified, request, contextHandle);
        add.push(...proxyHeaders(req));
        if (req.headers['x-request-id'] === undefined) add.push('x-request-id', randomUUID());
        // Tracing: the app's spans are children of our SERVER span, which lasts until the app has answered.
        if (traced) add.push(...traceHeaders(context.active()));
        const headers = forwardRequestHeaders(req.head, {
          dropAuthorization: !options.forwardToken,
          drop: replaced,
          add,
        });

        // 8. To the app, streaming — unless the body deadline has answered meanwhile. The app reads the Host the
        //    caller sent (the parser checked it is one authority), written first by the data plane.
        if (req.headersSent || req.closed) return req.statusCode;
        // A gRPC call's own deadline bounds the app's time too (grpc-timeout).
        const timeoutMs = Math.min(options.timeoutMs, (req.grpc ? grpcDeadlineMs(req) : undefined) ?? Infinity);
        return ctx.forwarder.forward(req, {
          origin: options.app,
          path: req.url,
          host: req.headers.host as string,
          headers,
          timeoutMs,
        });
      },
    },
    ctx,
  );
}
