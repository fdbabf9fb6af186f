/**
 * What the sidecar reads off a request before it decides anything, each
 * read refusing what could be read two ways:
 *
 * - the target: origin-form on the inbound port (it is not a proxy); on the
 *   outbound port origin-form with `Host`, or absolute-form `http://` (what
 *   an `HTTP_PROXY` client sends), naming a service of the call graph, or
 *   `CONNECT service:port` (what undici's ProxyAgent sends), which opens a
 *   tunnel read as requests to that service;
 * - the path: refused with 400 when its meaning depends on how the app's
 *   server normalises it (a dot segment in any spelling, a backslash,
 *   double encoding, NUL and controls, invalid or overlong UTF-8, raw bytes
 *   beyond ASCII); the milder classes only never match a `paths` pattern
 *   (src/policy/language/paths.ts);
 * - the bearer token (RFC 6750 §2.1): at most one Authorization, checked
 *   for size and alphabet before any parsing: a JWS in compact form is
 *   base64url and dots only, so anything else is refused without reaching
 *   a JSON parser.
 */
import type { RequestHead } from '../dataplane/stream.ts';
import { BadRequestError, MethodNotAllowedError } from '../core/errors.ts';
import { isServiceName } from '../core/service-name.ts';
import { AMBIGUOUS_PATH_ACTION, type AmbiguousPathClass, readRequestPath } from '../policy/language/paths.ts';
import { UnauthenticatedError } from './errors.ts';

// --- the target ---

export interface RequestTarget {
  readonly service: string;
  /** Origin-form path with query, as sent on. */
  readonly path: string;
}

/**
 * The service and path of an outbound request. Only `http://` is
 * intercepted: an `https://` URL would hide the request from the sidecar,
 * so it is refused rather than passed through blind. Inside a CONNECT
 * tunnel (./outbound.ts opens them) every request must name the service
 * the tunnel was opened to.
 */
export function requestTarget(
  req: Pick<RequestHead, 'method' | 'url' | 'headers'> & { readonly tunnel?: string | undefined },
): RequestTarget {
  const url = req.url ?? '';
  if (req.method === 'CONNECT')
    throw new MethodNotAllowedError('expected a CONNECT only to open a tunnel, not inside one', { reason: 'connect' });
  let authority: string;
  let path: string;
  if (url.charCodeAt(0) === 0x2f) {
    const host = req.headers.host;
    if (host === undefined || host === '')
      throw new BadRequestError('expected a Host header naming the target service, got none');
    authority = host;
    path = url;
  } else if (/^http:\/\//i.test(url)) {
    const rest = url.slice(7);
    const end = rest.search(/[/?#]/);
    authority = end === -1 ? rest : rest.slice(0, end);
    path = end === -1 ? '/' : rest.charCodeAt(end) === 0x2f ? rest.slice(end) : `/${rest.slice(end)}`;
    if (path.includes('#')) throw new BadRequestError('expected no fragment in the request target');
  } else {
    throw new BadRequestError(
      'expected an http:// absolute URL or an origin-form path with Host; https:// is not intercepted',
    );
  }
  if (authority.includes('@')) throw new BadRequestError('expected no userinfo in the target authority');
  const service = serviceOfAuthority(authority);
  if (req.tunnel !== undefined && service !== serviceOfAuthority(req.tunnel)) {
    throw new BadRequestError(
      `expected a request for the service the CONNECT tunnel was opened to (${serviceOfAuthority(req.tunnel)}), got one for ${service}`,
    );
  }
  return { service, path };
}

/**
 * The service a CONNECT opens a tunnel to (`CONNECT orders:7070`), as
 * undici's ProxyAgent and Node's `fetch` with `NODE_USE_ENV_PROXY=1` send
 * even for `http://` URLs. Port 443 is refused: a client that tunnels there
 * means to speak TLS to the service itself, which no policy could read.
 */
export function connectTarget(req: RequestHead): string {
  const authority = req.url ?? '';
  if (/:443$/.test(authority))
    throw new MethodNotAllowedError(
      'expected a CONNECT to an http:// service; one to port 443 would carry TLS the sidecar cannot read (use http:// to the sidecar: it adds mTLS itself)',
    );
  return serviceOfAuthority(authority);
}

function serviceOfAuthority(authority: string): string {
  const name = authority.replace(/:\d+$/, '').toLowerCase();
  if (!isServiceName(name))
    throw new BadRequestError(`expected the host to be a service name (DNS-1123 label), got '${name.slice(0, 64)}'`);
  return name;
}

/** The path (query cut off) of an origin-form request target; the inbound port is not a proxy. */
export function originFormPath(url: string | undefined): string {
  if (url === undefined || url.charCodeAt(0) !== 0x2f)
    throw new BadRequestError('expected an origin-form request target (/path), got another form');
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

// --- the path ---

// RFC 3986 §2: a request target is ASCII; servers disagree on what raw bytes above 0x7F mean.
const RAW_NON_ASCII = /[^\x21-\x7e]/;

/** Throws BATON_BAD_REQUEST (400), reason `ambiguous-path`, for a path (no query) of a refused class. */
export function refuseAmbiguousPath(path: string): void {
  let refused: AmbiguousPathClass | undefined;
  if (RAW_NON_ASCII.test(path)) refused = 'raw-non-ascii';
  else {
    const read = readRequestPath(path);
    if (read.ambiguous !== undefined && AMBIGUOUS_PATH_ACTION[read.ambiguous] === 'refuse') refused = read.ambiguous;
  }
  if (refused !== undefined) {
    throw new BadRequestError(
      `expected a path that means the same under every normalisation, got one in the class '${refused}'`,
      { reason: 'ambiguous-path', extensions: { pathClass: refused } },
    );
  }
}

// --- the bearer token ---

const JWS_COMPACT = /^[A-Za-z0-9_.-]+$/;
const BEARER_PREFIX = /^bearer +/i;

/**
 * The token, or undefined when the request carries no Authorization at all.
 * Reads the head's fields only: the sidecar passes its stream, `baton authz`
 * the head a proxy described (src/authz/).
 */
export function bearerToken(
  req: Pick<RequestHead, 'headers' | 'rawHeaders'>,
  maxTokenBytes: number,
): string | undefined {
  const authorization = req.headers.authorization;
  if (authorization === undefined) return undefined;
  if (countAuthorization(req.rawHeaders) > 1) {
    // Two credentials: which one a later hop would read is not ours to guess.
    throw new BadRequestError('expected at most one Authorization header, got several');
  }
  const prefix = BEARER_PREFIX.exec(authorization);
  if (prefix === null) throw new UnauthenticatedError('expected the Bearer authentication scheme (RFC 6750 §2.1)');
  const token = authorization.slice(prefix[0].length);
  if (token.length > maxTokenBytes) {
    throw new UnauthenticatedError(`expected a bearer token of at most ${maxTokenBytes} bytes, got ${token.length}`, {
      reason: 'too_large',
    });
  }
  if (!JWS_COMPACT.test(token))
    throw new UnauthenticatedError('expected a bearer token of base64url characters and dots (a JWS in compact form)');
  return token;
}

function countAuthorization(rawHeaders: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2)
    if ((rawHeaders[i] as string).length === 13 && (rawHeaders[i] as string).toLowerCase() === 'authorization') n++;
  return n;
}

// --- the gRPC deadline ---

const GRPC_TIMEOUT = /^([0-9]{1,8})([HMSmun])$/;
const GRPC_TIMEOUT_UNIT_MS: Readonly<Record<string, number>> = {
  H: 3_600_000,
  M: 60_000,
  S: 1_000,
  m: 1,
  u: 0.001,
  n: 0.000_001,
};

/**
 * A gRPC call's deadline from its `grpc-timeout` (PROTOCOL-HTTP2.md: at most
 * 8 digits and a unit), in milliseconds; undefined for no or a malformed
 * value (gRPC servers ignore a malformed one too). The sidecar's token
 * exchange and forward take no longer than it.
 */
export function grpcDeadlineMs(req: RequestHead): number | undefined {
  const value = req.headers['grpc-timeout'];
  if (typeof value !== 'string') return undefined;
  const match = GRPC_TIMEOUT.exec(value);
  if (match === null) return undefined;
  return Math.max(1, Math.ceil(Number(match[1]) * (GRPC_TIMEOUT_UNIT_MS[match[2] as string] as number)));
}
