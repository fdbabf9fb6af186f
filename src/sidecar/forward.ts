/**
 * Forwarding one request to one origin, streaming both ways with undici:
 * one keep-alive `Pool` per origin, the incoming request as the body, the
 * upstream body piped straight to the response. Nothing is buffered, so a
 * 50 MB upload costs what its socket buffers cost.
 */
import { DEFAULT_CONNECT_TIMEOUT_MS, KEEP_ALIVE_TIMEOUT_MS } from '../identity/config.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Dispatcher, Pool } from 'undici';
import type { BatonError } from '../core/errors.ts';
import { isBatonHeader } from './identity-headers.ts';
import { UpstreamIdentityMismatchError, UpstreamTimeoutError, UpstreamTlsError, UpstreamUnreachableError } from './errors.ts';

// RFC 9110 §7.6.1: hop-by-hop fields, plus the pre-standard ones proxies still see.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'proxy-authorization']);

export interface HeaderRules {
  /** Drop the caller's Authorization (the sidecar sets its own, or the app gets none). */
  readonly dropAuthorization: boolean;
  /** Drop Host so undici sets the upstream's. */
  readonly dropHost: boolean;
  /** Further lower-case names to drop (the caller replaces them through `add`). */
  readonly drop?: ReadonlySet<string>;
  /** Appended after filtering: `[name, value, …]`. */
  readonly add: readonly string[];
}

/**
 * The request header list to send on, from the raw list node:http kept
 * (repeated fields stay repeated): hop-by-hop fields and those `Connection`
 * names removed (RFC 9110 §7.6.1), every `baton-*` removed, `Expect`
 * removed (node:http already answered the 100-continue).
 */
export function forwardRequestHeaders(rawHeaders: readonly string[], rules: HeaderRules): string[] {
  const connectionNamed = connectionTokens(rawHeaders);
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] as string).toLowerCase();
    if (HOP_BY_HOP.has(name) || isBatonHeader(name) || name === 'expect') continue;
    if (connectionNamed !== undefined && connectionNamed.has(name)) continue;
    if (rules.dropAuthorization && name === 'authorization') continue;
    if (rules.dropHost && name === 'host') continue;
    if (rules.drop?.has(name)) continue;
    out.push(rawHeaders[i] as string, rawHeaders[i + 1] as string);
  }
  for (const value of rules.add) out.push(value);
  return out;
}

function connectionTokens(rawHeaders: readonly string[]): Set<string> | undefined {
  let named: Set<string> | undefined;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if ((rawHeaders[i] as string).toLowerCase() !== 'connection') continue;
    named ??= new Set();
    for (const token of (rawHeaders[i + 1] as string).split(',')) named.add(token.trim().toLowerCase());
  }
  return named;
}

/** The upstream's response headers minus hop-by-hop fields (and those its `Connection` names). */
export function forwardResponseHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const connection = headers.connection;
  const named = connection === undefined ? undefined : new Set(String(connection).split(',').map((t) => t.trim().toLowerCase()));
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named?.has(name)) continue;
    out[name] = value;
  }
  return out;
}

export interface ForwardTarget {
  /** `http://host:port` */
  readonly origin: string;
  /** Origin-form path with query. */
  readonly path: string;
  readonly headers: readonly string[];
  /** Time to response headers, and the longest pause between body chunks. */
  readonly timeoutMs: number;
  /** mtls: the mesh agent of the certificate generation this request is bound to; else a plain keep-alive pool per origin. */
  readonly dispatcher?: Dispatcher;
}

export interface Forwarder {
  /** Resolves once the response has been written (or the client went away); rejects only before the response started. */
  forward(req: IncomingMessage, res: ServerResponse, target: ForwardTarget): Promise<number>;
  close(): Promise<void>;
}

export function createForwarder(options: { connectTimeoutMs?: number } = {}): Forwarder {
  const pools = new Map<string, Pool>();
  const poolFor = (origin: string): Pool => {
    let pool = pools.get(origin);
    if (pool === undefined) {
      pool = new Pool(origin, { connectTimeout: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS, pipelining: 1 });
      pools.set(origin, pool);
    }
    return pool;
  };

  return {
    forward(req, res, target) {
      return new Promise<number>((resolve, reject) => {
        // Raw dispatch, not pool.request + stream.pipeline: no body stream object and no AbortController per
        // request (pipeline's controller is aborted, DOMException and all, on every success). Measured in docs/performance.md.
        let controller: Dispatcher.DispatchController | undefined;
        let status = 0;
        let settled = false;
        const settle = (value: number): void => {
          if (settled) return;
          settled = true;
          res.off('close', onClose);
          resolve(value);
        };
        const onClose = (): void => {
          if (res.writableFinished) return;
          controller?.abort(new ClientGoneError());
          settle(status === 0 ? 499 : status);
        };
        const onDrain = (): void => controller?.resume();
        res.once('close', onClose);
        (target.dispatcher ?? poolFor(target.origin)).dispatch(
          {
            origin: target.origin,
            path: target.path,
            method: req.method as Dispatcher.HttpMethod,
            headers: target.headers as string[],
            body: hasBody(req) ? req : null,
            headersTimeout: target.timeoutMs,
            bodyTimeout: target.timeoutMs,
          },
          {
            onRequestStart(c) {
              controller = c;
              if (res.destroyed) c.abort(new ClientGoneError());
            },
            onResponseStart(_c, statusCode, headers) {
              // node:http answered any 100-continue itself; other interim answers are not relayed.
              if (statusCode < 200) return;
              status = statusCode;
              res.writeHead(statusCode, forwardResponseHeaders(headers));
            },
            onResponseData(c, chunk) {
              if (!res.write(chunk)) {
                c.pause();
                res.once('drain', onDrain);
              }
            },
            onResponseEnd() {
              res.off('drain', onDrain);
              res.end();
              settle(status);
            },
            onResponseError(_c, error) {
              res.off('drain', onDrain);
              if (settled) return;
              if (status !== 0 || res.destroyed) {
                // The client or the upstream went away mid-body: the connection is cut, nothing more to say.
                res.destroy();
                settle(status === 0 ? 499 : status);
                return;
              }
              settled = true;
              res.off('close', onClose);
              reject(upstreamError(error));
            },
          },
        );
      });
    },
    async close() {
      await Promise.all([...pools.values()].map((pool) => pool.close().catch(() => pool.destroy())));
      pools.clear();
    },
  };
}

/** Why a forward was cut short: the client closed its connection first. */
class ClientGoneError extends Error {
  override readonly name = 'ClientGoneError';
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);
// OpenSSL verification and handshake failures as node reports them (CERT_HAS_EXPIRED, UNABLE_TO_VERIFY_LEAF_SIGNATURE, ERR_SSL_…).
const TLS_CODE = /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|ECONNRESET_TLS)/;

/** The upstream failure as a problem; the message names the failure class, never upstream content. */
export function upstreamError(error: unknown): BatonError {
  const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : 'unknown';
  if (TIMEOUT_CODES.has(code)) return new UpstreamTimeoutError(`expected the upstream to answer in time, got ${code}`, { cause: error });
  if (code === 'BATON_IDENTITY_PEER_MISMATCH') return new UpstreamIdentityMismatchError('expected the upstream to present the target service\'s SPIFFE ID, got another; nothing was sent', { cause: error });
  if (TLS_CODE.test(code)) return new UpstreamTlsError(`expected a TLS handshake with a certificate from the trust bundle, got ${code}; nothing was sent`, { cause: error });
  return new UpstreamUnreachableError(`expected the upstream to accept the request, got ${code}`, { cause: error });
}
