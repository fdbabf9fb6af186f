/**
 * Forwarding one request to one origin on the socket data plane
 * (src/dataplane/pool.ts): the upstream origins the sidecar forwards to,
 * and the upstream's failures as problems. What goes on in the head is
 * ./headers.ts's.
 */
import type { ConnectionOptions } from 'node:tls';
import type { HttpStream } from '../dataplane/stream.ts';
import { endpointOf } from '../telemetry/http-spans.ts';
import { createUpstreams, type UpstreamOptions } from '../dataplane/pool.ts';
import { type ForwardSpec, UPSTREAM_FRAMING, UPSTREAM_TIMEOUT, UpstreamFailure, type UpstreamOrigin } from '../dataplane/forward-call.ts';
import type { BatonError } from '../core/errors.ts';
import { UpstreamFramingError, UpstreamIdentityMismatchError, UpstreamTimeoutError, UpstreamTlsError, UpstreamUnreachableError } from './errors.ts';

/** Where a request is forwarded: an origin URL (`http://host:port`, `https://…` for mTLS) as the data plane dials it. */
export function upstreamOrigin(url: URL, tls?: ConnectionOptions, generation?: string): UpstreamOrigin {
  const { host, port, origin } = endpointOf(url);
  return { key: generation === undefined ? origin : `${generation} ${origin}`, host, port, authority: url.host, tls };
}

export interface Forwarder {
  /** Resolves once the response has been written (or the client went away); rejects with a problem only before the response started. */
  forward(stream: HttpStream, target: ForwardSpec): Promise<number>;
  close(): void;
}

export function createForwarder(options: UpstreamOptions): Forwarder {
  const upstreams = createUpstreams(options);
  return {
    forward: (stream, target) => upstreams.forward(stream, target).catch((error: unknown) => Promise.reject(upstreamError(error))),
    close: () => upstreams.close(),
  };
}

const TIMEOUT_CODES = new Set([UPSTREAM_TIMEOUT]);
// OpenSSL verification and handshake failures as node reports them (CERT_HAS_EXPIRED, UNABLE_TO_VERIFY_LEAF_SIGNATURE, ERR_SSL_…).
const TLS_CODE = /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|ECONNRESET_TLS)/;

/** The upstream failure as a problem; the message names the failure class, never upstream content. */
export function upstreamError(error: unknown): BatonError {
  const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : 'unknown';
  if (TIMEOUT_CODES.has(code)) return new UpstreamTimeoutError(`expected the upstream to answer in time, got ${code}`, { cause: error });
  if (code === UPSTREAM_FRAMING) {
    const reason = error instanceof UpstreamFailure ? (error.reason ?? 'unreadable') : 'unreadable';
    return new UpstreamFramingError(`expected one unambiguous HTTP/1.1 answer from the upstream, got one refused for ${reason}; nothing of it was passed on`, { cause: error, extensions: { reason } });
  }
  if (code === 'BATON_IDENTITY_PEER_MISMATCH') return new UpstreamIdentityMismatchError('expected the upstream to present the target service\'s SPIFFE ID, got another; nothing was sent', { cause: error });
  if (TLS_CODE.test(code)) return new UpstreamTlsError(`expected a TLS handshake with a certificate from the trust bundle, got ${code}; nothing was sent`, { cause: error });
  return new UpstreamUnreachableError(`expected the upstream to accept the request, got ${code}`, { cause: error });
}
