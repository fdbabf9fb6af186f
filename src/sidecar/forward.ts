/**
 * Forwarding one request to one origin on the socket data plane
 * (src/dataplane/pool.ts): the upstream origins the sidecar forwards to,
 * and the upstream's failures as problems. What goes on in the head is
 * ./headers.ts's.
 */
import type { ConnectionOptions } from 'node:tls';
import type { HttpStream, RequestStream } from '../dataplane/stream.ts';
import { createH2Upstreams, type H2UpstreamOptions } from '../dataplane/h2-forward.ts';
import { H2Stream } from '../dataplane/h2-stream.ts';
import { endpointOf } from '../telemetry/http-spans.ts';
import { createUpstreams, type UpstreamOptions } from '../dataplane/pool.ts';
import {
  type ForwardSpec,
  UPSTREAM_FRAMING,
  UPSTREAM_TIMEOUT,
  UPSTREAM_TLS_FAILED,
  UPSTREAM_UNREACHABLE,
  UpstreamFailure,
  type UpstreamOrigin,
} from '../dataplane/forward-call.ts';
import type { HttpError } from '../core/errors.ts';
import {
  UpstreamFramingError,
  UpstreamIdentityMismatchError,
  UpstreamTimeoutError,
  UpstreamTlsError,
  UpstreamUnreachableError,
} from './errors.ts';

/** Where a request is forwarded: an origin URL (`http://host:port`, `https://…` for mTLS) as the data plane dials it. */
export function upstreamOrigin(url: URL, tls?: ConnectionOptions, generation?: string): UpstreamOrigin {
  const { host, port, origin } = endpointOf(url);
  return { key: generation === undefined ? origin : `${generation} ${origin}`, host, port, authority: url.host, tls };
}

export interface Forwarder {
  /** Resolves once the response has been written (or the client went away); rejects with a problem only before the response started. */
  forward(stream: RequestStream, target: ForwardSpec): Promise<number>;
  close(): void;
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
export function upstreamError(error: unknown): HttpError {
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
