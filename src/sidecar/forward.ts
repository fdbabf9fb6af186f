/**
 * Forwarding one request to one origin on the socket data plane
 * (src/dataplane/pool.ts): the sidecar's header rules for what goes
 * on, the upstream origins it forwards to, and the upstream's failures as
 * problems.
 */
import type { ConnectionOptions } from 'node:tls';
import type { Exchange } from '../dataplane/exchange.ts';
import { endpointOf } from '../telemetry/http-spans.ts';
import { endToEndHeaders } from '../dataplane/hop-by-hop.ts';
import { createUpstreams, type UpstreamOptions, type UpstreamOrigin } from '../dataplane/pool.ts';
import { type ForwardSpec, UPSTREAM_FRAMING, UPSTREAM_TIMEOUT, UpstreamFailure } from '../dataplane/forward-call.ts';
import type { MessageHead } from '../dataplane/http1-parser.ts';
import { type BatonError, InternalError } from '../core/errors.ts';
import { isBatonHeader } from './identity-headers.ts';
import { UpstreamFramingError, UpstreamIdentityMismatchError, UpstreamTimeoutError, UpstreamTlsError, UpstreamUnreachableError } from './errors.ts';

export interface HeaderRules {
  /** Drop the caller's Authorization (the sidecar sets its own, or the app gets none). */
  readonly dropAuthorization: boolean;
  /** Further lower-case names to drop (the caller replaces them through `add`). */
  readonly drop?: ReadonlySet<string>;
  /** Appended after filtering: `[name, value, …]`. */
  readonly add: readonly string[];
}

/**
 * The request header list to send on, from the raw list the parser kept
 * (repeated fields stay repeated): hop-by-hop fields, framing fields and
 * those `Connection` names removed (RFC 9110 §7.6.1; the data plane writes
 * Host and the framing itself, src/dataplane/wire.ts), every `baton-*`
 * removed, `Expect` removed (the sidecar answers a 100-continue itself,
 * once the request is allowed). The added values are checked: none may
 * split the head.
 */
// RFC 9110 §5.5 field-value, narrowed to what the sidecar itself writes: visible ASCII, space and tab.
const FIELD_TEXT = /^[\x20-\x7e\t]*$/;

export function forwardRequestHeaders(head: Pick<MessageHead, 'rawHeaders' | 'connection'>, rules: HeaderRules): string[] {
  const out = endToEndHeaders(head, 'request', (name) => isBatonHeader(name) || name === 'expect' || (rules.dropAuthorization && name === 'authorization') || rules.drop?.has(name) === true);
  for (const value of rules.add) {
    if (!FIELD_TEXT.test(value)) throw new InternalError('expected header values of visible ASCII, built one holding another character');
    out.push(value);
  }
  return out;
}

/** Where a request is forwarded: an origin URL (`http://host:port`, `https://…` for mTLS) as the data plane dials it. */
export function upstreamOrigin(url: URL, tls?: ConnectionOptions, generation?: string): UpstreamOrigin {
  const { host, port, origin } = endpointOf(url);
  return { key: generation === undefined ? origin : `${generation} ${origin}`, host, port, authority: url.host, tls };
}

export interface Forwarder {
  /** Resolves once the response has been written (or the client went away); rejects with a problem only before the response started. */
  forward(exchange: Exchange, target: ForwardSpec): Promise<number>;
  close(): void;
}

export function createForwarder(options: UpstreamOptions): Forwarder {
  const upstreams = createUpstreams(options);
  return {
    forward: (exchange, target) => upstreams.forward(exchange, target).catch((error: unknown) => Promise.reject(upstreamError(error))),
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
