/**
 * One request through either sidecar port, written once (#25): the steps
 * every request takes whatever its direction, around the port's own steps
 * (./inbound.ts, ./outbound.ts):
 *
 *   admit (the port's in-flight limit; inbound: this peer's share; the
 *   body deadline armed) → span (inbound SERVER, outbound CLIENT, tracing
 *   on only) → ready (a verified policy, read once as one value with its
 *   version) → the port's steps → a refusal mapped to a HttpError →
 *   problem document (RFC 9457; RFC 6750 challenge on 401; Retry-After on
 *   429 and 503) → metrics → `request_failed` audit line (5xx only: a 4xx
 *   is the request's own fault, and its decision line already says why).
 *
 * Nothing a port throws is echoed: a foreign error becomes BATON_INTERNAL,
 * so no message that could hold a token reaches a client.
 *
 * The port's last step is the forwarder's, written here too: the request
 * goes on to one origin on the data plane (src/dataplane/pool.ts, or
 * src/dataplane/h2-forward.ts for HTTP/2) in the protocol it came in, and an
 * upstream's failure comes back as a problem by its class. What goes on in
 * the head is ./headers.ts's.
 */
import type { ConnectionOptions } from 'node:tls';
import { type Span, context } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { ConnectionRefusal, RefusalAnswer } from '../dataplane/client-connection.ts';
import {
  UPSTREAM_FRAMING,
  UPSTREAM_TIMEOUT,
  UPSTREAM_TLS_FAILED,
  UPSTREAM_UNREACHABLE,
  UpstreamFailure,
  type UpstreamOrigin,
} from '../dataplane/forward-call.ts';
import { createH2Upstreams, type H2UpstreamOptions } from '../dataplane/h2-forward.ts';
import { H2Stream } from '../dataplane/h2-stream.ts';
import { createUpstreams, type UpstreamOptions } from '../dataplane/pool.ts';
import type { HttpStream, RequestStream } from '../dataplane/stream.ts';
import {
  type HttpError,
  InternalError,
  isHttpError,
  MethodNotAllowedError,
  NotReadyError,
  OverloadedError,
} from '../core/errors.ts';
import { PROBLEM_CONTENT_TYPE, retryAfterFor, toProblem } from '../core/problem.ts';
import { writeAuditEvent } from '../telemetry/audit-event.ts';
import { endHttpSpan, endpointOf, type HttpSpan, recordGrpcStatus } from '../telemetry/http-spans.ts';
import type { Forwarder, PolicySnapshot, SidecarContext } from './collaborators.ts';
import { BINDING_ERROR_CODES } from './edge-check.ts';
import {
  FairShareExceededError,
  RequestFramingError,
  RequestHeadTooLargeError,
  RequestTimeoutError,
  StepUpRequiredError,
  UpgradeRefusedError,
  UpstreamFramingError,
  UpstreamIdentityMismatchError,
  UpstreamTimeoutError,
  UpstreamTlsError,
  UpstreamUnreachableError,
} from './errors.ts';
import { type Direction, FORWARDED, type RequestMetrics } from './metrics.ts';

/** What a port's steps learn about a request that the pipeline reports. */
export interface Call {
  /** The request series it counts under; a port narrows it to its target's once it knows the target. */
  requests: RequestMetrics;
  /** A credential was presented: a 401 challenge then names the error (RFC 6750 §3.1). */
  credential: boolean;
}

export interface Port {
  readonly direction: Direction;
  /** The series a request counts under until the port narrows it. */
  readonly requests: RequestMetrics;
  readonly inflight: Inflight;
  /** Inbound: one peer address holds only its share of the limit. */
  readonly sharePerPeer: boolean;
  /** Inbound: the request body must arrive within this (the app's timeout does not cover the upload). */
  readonly bodyTimeoutMs?: number;
  /** Tracing on: the span the request runs in, a child of the caller's trace context. */
  readonly startSpan?: (stream: RequestStream) => HttpSpan;
  /** The port's own steps: resolve with the status sent, or throw the refusal. */
  run(stream: RequestStream, call: Call, snapshot: PolicySnapshot): Promise<number>;
}

/** The request handler of a port: the data plane calls it once per request head. */
export function createPipeline(
  port: Port,
  ctx: Pick<SidecarContext, 'metrics' | 'logger' | 'policy' | 'readiness'>,
): (stream: RequestStream) => void {
  const { direction, inflight } = port;
  const kind = direction === 'inbound' ? 'server' : 'client';
  return (stream) => {
    const started = performance.now();
    const call: Call = { requests: port.requests, credential: false };
    // 1. Admit: refused at once rather than queued behind a slow app.
    const refused = !inflight.admit(stream)
      ? new OverloadedError(`expected fewer requests in flight, the ${direction} limit is reached`)
      : port.sharePerPeer && !inflight.share(stream, 'peer', stream.socket.remoteAddress ?? 'unknown')
        ? new FairShareExceededError(
            'expected this peer to hold fewer requests in flight, its share of the inbound limit is used up',
          )
        : undefined;
    if (refused !== undefined) {
      sendProblem(stream, refused, false);
      call.requests.done(refused.status, refused.code, (performance.now() - started) / 1000);
      return;
    }
    // 2. Span: everything below (audit lines included) runs in it.
    const traced = port.startSpan?.(stream);
    if (traced === undefined) run(stream, call, undefined, started);
    else context.with(traced.context, run, undefined, stream, call, traced.span, started);
  };

  function run(stream: RequestStream, call: Call, span: Span | undefined, started: number): void {
    let expired = false;
    if (port.bodyTimeoutMs !== undefined) {
      armBodyDeadline(stream, port.bodyTimeoutMs, () => {
        expired = true;
        stream.shouldKeepAlive = false;
        finish(
          stream,
          call,
          span,
          started,
          new RequestTimeoutError(`expected the request body within ${port.bodyTimeoutMs} ms, it was still arriving`, {
            reason: 'body',
          }),
        );
      });
    }
    steps(stream, call).then(
      (status) => {
        if (expired) return;
        call.requests.done(status, FORWARDED, (performance.now() - started) / 1000);
        if (span !== undefined) {
          if (stream.grpcStatus !== undefined) recordGrpcStatus(span, stream.grpcStatus);
          endHttpSpan(span, kind, status);
        }
      },
      (error: unknown) => {
        if (!expired) finish(stream, call, span, started, asHttpError(error));
      },
    );
  }

  async function steps(stream: RequestStream, call: Call): Promise<number> {
    // 3. Ready: the policy and its version read once, as one value, for the whole request.
    const snapshot = ctx.policy.snapshot();
    if (snapshot === undefined || !ctx.readiness.ready)
      throw new NotReadyError('expected a verified call-graph policy and the STS keys, have not got them yet');
    return port.run(stream, call, snapshot);
  }

  /** 5–7. A refusal: problem document, metrics, span, and the audit line a 5xx gets. */
  function finish(
    stream: RequestStream,
    call: Call,
    span: Span | undefined,
    started: number,
    problem: HttpError,
  ): void {
    recordRefusal(ctx, direction, stream.method, span, problem);
    sendProblem(stream, problem, call.credential);
    call.requests.done(problem.status, problem.code, (performance.now() - started) / 1000);
    if (span !== undefined) {
      if (stream.grpc) recordGrpcStatus(span, grpcStatusOf(problem.status));
      endHttpSpan(span, kind, problem.status, problem.code);
    }
  }
}

/** The `request_failed` audit line of a refused request: its code, the reason within it, its status and title. */
export function auditRequestFailed(
  logger: Logger,
  direction: Direction,
  method: string | undefined,
  problem: HttpError,
): void {
  writeAuditEvent(
    logger,
    {
      event: 'request_failed',
      component: 'sidecar',
      direction,
      code: problem.code,
      reason: problem.reason,
      status: problem.status,
      method,
    },
    problem.title,
  );
}

/**
 * What every refusal leaves behind besides its answer, whoever answers it
 * (this pipeline, or `baton authz` for a proxy, src/authz/): a refused
 * certificate binding is counted and named on the span, and a 5xx gets its
 * `request_failed` audit line (a 4xx is the request's own fault, and its
 * decision line, if it got that far, already says why).
 */
export function recordRefusal(
  ctx: Pick<SidecarContext, 'metrics' | 'logger'>,
  direction: Direction,
  method: string | undefined,
  span: Span | undefined,
  problem: HttpError,
): void {
  if (BINDING_ERROR_CODES.has(problem.code)) {
    ctx.metrics.bindingRefusal(problem.code);
    // A 401 is not a server error, but a refused binding is what an operator hunts for: name it on the span.
    span?.setAttribute('error.type', problem.code);
  }
  if (problem.status >= 500) auditRequestFailed(ctx.logger, direction, method, problem);
}

// --- admission ---

/** What admission holds a slot for: a stream, or any request that says when it is over (`baton authz`'s checks). */
export interface Admitted {
  /** Called once when the request is over, whichever way it ended. */
  onClose(listener: () => void): void;
}

export type ShareKind = 'peer' | 'subject';

/**
 * Bounded concurrency for one direction, and the count SIGTERM drains: a
 * request past `max` is refused at once with 503 rather than queued behind
 * a slow app (DESIGN.md, "app slow … bounded concurrency → 503"). The limit
 * is shared fairly: one peer address, or one user, may hold only its share
 * of it (`peerShare`, `subjectShare` × `max`), so a single token trickling
 * a thousand slow uploads cannot fill every slot (issue #16).
 */
export interface Inflight {
  /** Admits the request and releases it when its stream is over; false when full. */
  admit(stream: Admitted): boolean;
  /** Counts the admitted request against `key`'s share until its stream is over; false (and not counted) when the share is used up. */
  share(stream: Admitted, kind: ShareKind, key: string): boolean;
  count(): number;
  /** Resolves when nothing is in flight. */
  idle(): Promise<void>;
}

export interface InflightShares {
  /** Fraction of `max` one peer address may hold; 1 turns the bound off. */
  readonly peer: number;
  /** Fraction of `max` one user may hold; 1 turns the bound off. */
  readonly subject: number;
}

export function createInflight(
  max: number,
  onChange?: (delta: 1 | -1) => void,
  shares: InflightShares = { peer: 1, subject: 1 },
): Inflight {
  let count = 0;
  let waiters: Array<() => void> = [];
  const limits: Readonly<Record<ShareKind, number>> = {
    peer: Math.max(1, Math.floor(max * shares.peer)),
    subject: Math.max(1, Math.floor(max * shares.subject)),
  };
  // Keyed by kind and key; entries leave when their count returns to 0, so the map is bounded by what is in flight.
  const held = new Map<string, number>();
  const release = (): void => {
    count--;
    onChange?.(-1);
    if (count === 0) {
      const done = waiters;
      waiters = [];
      for (const resolve of done) resolve();
    }
  };
  return {
    admit(stream) {
      if (count >= max) return false;
      count++;
      onChange?.(1);
      stream.onClose(release);
      return true;
    },
    share(stream, kind, key) {
      const limit = limits[kind];
      if (limit >= max) return true;
      const id = `${kind}\n${key}`;
      const n = held.get(id) ?? 0;
      if (n >= limit) return false;
      held.set(id, n + 1);
      stream.onClose(() => {
        const left = (held.get(id) ?? 1) - 1;
        if (left <= 0) held.delete(id);
        else held.set(id, left);
      });
      return true;
    },
    count: () => count,
    idle: () => (count === 0 ? Promise.resolve() : new Promise((resolve) => waiters.push(resolve))),
  };
}

/**
 * A deadline for receiving the request body (issue #16): without it, one
 * user trickling bodies a byte a minute holds its in-flight slots for as
 * long as the sockets live. Past the deadline the request is answered 408
 * (RFC 9110 §15.5.9) and its connection closed; a request without a body
 * arms nothing.
 */
function armBodyDeadline(stream: RequestStream, ms: number, expire: () => void): void {
  if (stream.requestComplete || !stream.hasBody) return;
  const timer = setTimeout(() => {
    if (!stream.requestComplete && !stream.finished && !stream.closed) expire();
  }, ms);
  stream.onClose(() => clearTimeout(timer));
}

// --- problem documents ---

export const REALM = 'baton';

/**
 * The `WWW-Authenticate` value for a 401, or undefined for other statuses.
 * RFC 6750 §3.1: a request with no token at all gets the bare challenge,
 * without an error code. RFC 9470 §3: a step-up names the acceptable `acr`s.
 */
export function challengeFor(error: HttpError, tokenPresent: boolean): string | undefined {
  if (error.status !== 401) return undefined;
  if (error.code === StepUpRequiredError.code) {
    const acrValues = error.extensions.acr_values;
    const acr = typeof acrValues === 'string' ? `, acr_values="${quoted(acrValues)}"` : '';
    return `Bearer realm="${REALM}", error="insufficient_user_authentication", error_description="a stronger authentication is required"${acr}`;
  }
  if (!tokenPresent) return `Bearer realm="${REALM}"`;
  return `Bearer realm="${REALM}", error="invalid_token"`;
}

// RFC 9110 §5.6.4 quoted-string: a backslash or a quote must be escaped.
function quoted(value: string): string {
  return value.replace(/[\\"]/g, (c) => `\\${c}`).replace(/[^\x20-\x7e]/g, '');
}

/** Any thrown value as a `HttpError`, without ever echoing a foreign message (it could hold a token). */
export function asHttpError(error: unknown): HttpError {
  return isHttpError(error) ? error : new InternalError('the sidecar failed to handle this request', { cause: error });
}

/**
 * Writes `error` as a problem document — or, to a gRPC caller, as a gRPC
 * status, never a problem document (gRPC over HTTP/2: HTTP 200, the code in
 * `grpc-status`, `grpc-message` naming the baton code); when the answer has
 * started, cuts the stream instead.
 */
export function sendProblem(stream: RequestStream, error: HttpError, tokenPresent: boolean, instance?: string): void {
  if (stream.closed) return;
  if (stream.headersSent) {
    stream.destroy();
    return;
  }
  if (stream.grpc) stream.respondGrpc(grpcStatusOf(error.status), `${error.code}: ${error.message}`);
  else stream.respond(error.status, problemHeaders(error, tokenPresent), JSON.stringify(toProblem(error, instance)));
}

/**
 * gRPC status codes (grpc/doc/statuscodes.md) for the HTTP status a refusal
 * would have had: 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 429
 * RESOURCE_EXHAUSTED, 503 and 502 UNAVAILABLE, 504 and 408
 * DEADLINE_EXCEEDED, 400 and 431 INVALID_ARGUMENT, 404 and 405
 * UNIMPLEMENTED; anything else INTERNAL.
 */
export const GRPC_STATUS = {
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

export function grpcStatusOf(status: number): number {
  switch (status) {
    case 401:
      return GRPC_STATUS.UNAUTHENTICATED;
    case 403:
      return GRPC_STATUS.PERMISSION_DENIED;
    case 429:
      return GRPC_STATUS.RESOURCE_EXHAUSTED;
    case 502:
    case 503:
      return GRPC_STATUS.UNAVAILABLE;
    case 408:
    case 504:
      return GRPC_STATUS.DEADLINE_EXCEEDED;
    case 400:
    case 413:
    case 431:
      return GRPC_STATUS.INVALID_ARGUMENT;
    case 404:
    case 405:
    case 501:
      return GRPC_STATUS.UNIMPLEMENTED;
    default:
      return GRPC_STATUS.INTERNAL;
  }
}

/** The head of a problem response, Content-Length aside: a flat `[name, value, …]` list. */
export function problemHeaders(error: HttpError, tokenPresent: boolean): string[] {
  const headers = ['content-type', PROBLEM_CONTENT_TYPE, 'cache-control', 'no-store'];
  const challenge = challengeFor(error, tokenPresent);
  if (challenge !== undefined) headers.push('www-authenticate', challenge);
  if (error.code === MethodNotAllowedError.code) headers.push('allow', 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS');
  const retry = retryAfterFor(error);
  if (retry !== undefined) headers.push('retry-after', String(retry));
  return headers;
}

/** The problem for each code the data plane refuses a connection's request with; any other is framing, with its reason. */
const REFUSALS: Readonly<Record<string, (refusal: ConnectionRefusal) => HttpError>> = {
  [RequestHeadTooLargeError.code]: (refusal) =>
    new RequestHeadTooLargeError(`expected a request head within the limit, got ${refusal.detail}`),
  [MethodNotAllowedError.code]: () =>
    new MethodNotAllowedError(
      'expected a plain http:// request; CONNECT tunnels (https through a proxy) are not intercepted',
      { reason: 'connect' },
    ),
  [RequestTimeoutError.code]: (refusal) =>
    new RequestTimeoutError(`expected the request head in time, got ${refusal.detail}`, { reason: refusal.reason }),
  [UpgradeRefusedError.code]: () =>
    new UpgradeRefusedError('expected a plain HTTP/1.1 request; protocol upgrades (WebSocket, h2c) are not forwarded'),
};

/** The answer to a connection whose bytes the parser refused or that sent its head too slowly; nothing reached a handler. */
export function refusalAnswer(refusal: ConnectionRefusal): RefusalAnswer {
  const error =
    REFUSALS[refusal.code]?.(refusal) ??
    new RequestFramingError(`expected one unambiguous HTTP/1.1 request, got ${refusal.detail}`, {
      reason: refusal.reason,
    });
  return { fields: problemHeaders(error, false), body: JSON.stringify(toProblem(error)) };
}

// --- the last step: forward, and the upstream's failures as problems ---

/** Where a request is forwarded: an origin URL (`http://host:port`, `https://…` for mTLS) as the data plane dials it. */
export function upstreamOrigin(url: URL, tls?: ConnectionOptions, generation?: string): UpstreamOrigin {
  const { host, port, origin } = endpointOf(url);
  return { key: generation === undefined ? origin : `${generation} ${origin}`, host, port, authority: url.host, tls };
}

/** One forwarder for both protocols: a request goes on in the protocol it came in (src/dataplane/h2-forward.ts says why). */
export function createForwarder(options: UpstreamOptions & { readonly h2: H2UpstreamOptions }): Forwarder {
  const upstreams = createUpstreams(options);
  const h2 = createH2Upstreams(options.h2);
  return {
    forward: (stream, target) =>
      (stream instanceof H2Stream ? h2.forward(stream, target) : upstreams.forward(stream as HttpStream, target)).catch(
        (error: unknown) => Promise.reject(upstreamError(error)),
      ),
    close: () => {
      upstreams.close();
      h2.close();
    },
  };
}

/** The problem for each code the data plane classifies a failure into (src/dataplane/forward-call.ts); the reason goes along. */
const UPSTREAM_ANSWERS: Readonly<Record<string, (reason: string, cause: UpstreamFailure) => HttpError>> = {
  [UPSTREAM_TIMEOUT]: (_reason, cause) =>
    new UpstreamTimeoutError(`expected the upstream to answer in time: ${cause.message}`, { cause }),
  [UPSTREAM_UNREACHABLE]: (reason, cause) =>
    new UpstreamUnreachableError(`expected the upstream to accept the request, got ${reason}`, { cause, reason }),
  [UPSTREAM_TLS_FAILED]: (reason, cause) =>
    new UpstreamTlsError(
      `expected a TLS handshake with a certificate from the trust bundle, got ${reason}; nothing was sent`,
      { cause, reason },
    ),
  [UPSTREAM_FRAMING]: (reason, cause) =>
    new UpstreamFramingError(
      `expected one unambiguous HTTP/1.1 answer from the upstream, got one refused for ${reason}; nothing of it was passed on`,
      { cause, reason },
    ),
  // The TLS peer check's refusal (src/identity/errors.ts, PeerIdentityError), its reason `other-id` or `ca-certificate`.
  [UpstreamIdentityMismatchError.code]: (reason, cause) =>
    new UpstreamIdentityMismatchError(
      "expected the upstream to present the target service's SPIFFE ID, got another; nothing was sent",
      { cause, reason },
    ),
};

/** The upstream's failure as a problem, by its code; the message names the failure class and node's code, never upstream content. */
function upstreamError(error: unknown): HttpError {
  const answer =
    error instanceof UpstreamFailure ? UPSTREAM_ANSWERS[error.code]?.(error.reason ?? 'unknown', error) : undefined;
  return (
    answer ??
    new UpstreamUnreachableError('expected the upstream to accept the request, got a failure of no known class', {
      cause: error,
      reason: 'unknown',
    })
  );
}
