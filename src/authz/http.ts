/**
 * The HTTP check port: Envoy's HTTP ext_authz service and nginx's
 * `auth_request`, one contract for both, on one path prefix:
 *
 *   <method of the checked request> <pathPrefix>/inbound<its path and query>
 *   <method of the checked request> <pathPrefix>/outbound<its path and query>
 *
 * with the checked request's fields as the check's fields (Envoy: its
 * `allowed_headers`; nginx: every field of the request, the subrequest
 * inherits them). Envoy's `path_prefix` and nginx's `proxy_pass
 * http://authz<pathPrefix>/inbound$request_uri` with `proxy_method
 * $request_method` both produce it. The direction is in the path the
 * proxy's configuration writes, never in a field a caller could send. The
 * prefix is matched as bytes: nothing is decoded or normalised before the
 * original path is read, and the core refuses an ambiguous one.
 *
 * The peer is the last element of `x-forwarded-client-cert` (./peer.ts).
 *
 * Answers:
 * - **allowed**: 200, the fields to set as response fields (Envoy copies
 *   those in `allowed_upstream_headers`; nginx reads each with
 *   `auth_request_set $x $upstream_http_<name>`), the fields to remove in
 *   `x-envoy-auth-headers-to-remove` (Envoy's HTTP-service form of
 *   `headers_to_remove`), and `Cache-Control: max-age` for a cache in front
 *   (nginx `proxy_cache`), never past the token's exp, with `Vary` on the
 *   credentials;
 * - **refused**: the sidecar's problem document and status (401 with its
 *   challenge, 403…), `Cache-Control: no-store`, and the document again in
 *   `baton-problem` (ASCII JSON) for an nginx `error_page` to send, since
 *   nginx passes no body of an auth subrequest on.
 *
 * A request carrying a `baton-*` field baton does not write is refused
 * (400): over HTTP a proxy cannot be made to drop a field it was not named
 * in its configuration (nginx drops only the fields `proxy_set_header`
 * names), so such a field would reach the app. Over gRPC it is removed.
 */
import type { RequestStream } from '../dataplane/stream.ts';
import { BadRequestError, NotFoundError } from '../core/errors.ts';
import { IdentityHeader, isBatonHeader } from '../sidecar/headers.ts';
import type { Authorizer, CheckDirection, Verdict } from './check.ts';
import { MalformedCheckError } from './errors.ts';
import { peerOfXfcc } from './peer.ts';

/** Envoy's HTTP-service spelling of OkHttpResponse.headers_to_remove. */
export const HEADERS_TO_REMOVE = 'x-envoy-auth-headers-to-remove';
/** A refusal's problem document, as a field nginx can read (`$upstream_http_baton_problem`). */
export const PROBLEM_FIELD = 'baton-problem';
export const XFCC = 'x-forwarded-client-cert';

const IDENTITY_FIELDS: ReadonlySet<string> = new Set(Object.values(IdentityHeader));
// The answer depends on these fields of the checked request: a cache that honours Vary keeps one entry per value.
const VARY = 'authorization, baton-context, x-forwarded-client-cert';

export function createHttpFrontEnd(
  authorizer: Authorizer,
  options: { readonly pathPrefix: string },
): (stream: RequestStream) => void {
  const inbound = `${options.pathPrefix}/inbound`;
  const outbound = `${options.pathPrefix}/outbound`;
  return (stream) => {
    let direction: CheckDirection;
    let path: string;
    if (stream.url.startsWith(inbound)) {
      direction = 'inbound';
      path = stream.url.slice(inbound.length);
    } else if (stream.url.startsWith(outbound)) {
      direction = 'outbound';
      path = stream.url.slice(outbound.length);
    } else {
      answer(
        stream,
        authorizer.refuse(
          'inbound',
          stream.method,
          new NotFoundError(`expected a check at ${inbound}/… or ${outbound}/…`),
        ),
      );
      return;
    }
    // The original target follows the prefix whole: `/baton-authz/inboundx` is no check, and neither is a missing path.
    if (path.charCodeAt(0) !== 0x2f) {
      answer(
        stream,
        authorizer.refuse(
          direction,
          stream.method,
          new MalformedCheckError(
            `expected the checked request's path after ${direction === 'inbound' ? inbound : outbound}, got none`,
            { extensions: { reason: 'path' } },
          ),
        ),
      );
      return;
    }
    const headers = stream.headers as Record<string, string>;
    const foreign = Object.keys(headers).find((name) => isBatonHeader(name) && !IDENTITY_FIELDS.has(name));
    if (foreign !== undefined) {
      answer(
        stream,
        authorizer.refuse(
          direction,
          stream.method,
          new BadRequestError(
            `expected no baton-* field but baton's own, got ${foreign.slice(0, 64)}: a proxy asking over HTTP could not remove it`,
            { extensions: { reason: 'baton-field' } },
          ),
        ),
      );
      return;
    }
    let peer;
    try {
      peer = peerOfXfcc(headers[XFCC]);
    } catch (error) {
      if (!(error instanceof MalformedCheckError)) throw error;
      answer(stream, authorizer.refuse(direction, stream.method, error));
      return;
    }
    void authorizer
      .check({
        direction,
        method: stream.method,
        path,
        host: headers.host,
        headers,
        rawHeaders: stream.rawHeaders,
        peer,
        protocol: `HTTP/${stream.httpVersion}`,
      })
      .then((verdict) => answer(stream, verdict));
  };
}

function answer(stream: RequestStream, verdict: Verdict): void {
  if (stream.closed || stream.headersSent) return;
  if (verdict.allowed) {
    const fields = [...verdict.set];
    if (verdict.remove.length > 0) fields.push(HEADERS_TO_REMOVE, verdict.remove.join(', '));
    fields.push(
      'cache-control',
      verdict.maxAgeSeconds > 0 ? `max-age=${verdict.maxAgeSeconds}` : 'no-store',
      'vary',
      VARY,
    );
    stream.respond(200, fields, '');
    return;
  }
  stream.respond(verdict.error.status, [...verdict.headers, PROBLEM_FIELD, asciiJson(verdict.body)], verdict.body);
}

/** JSON with every character outside visible ASCII escaped, so it is a valid field value (RFC 9110 §5.5). */
function asciiJson(json: string): string {
  return json.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
