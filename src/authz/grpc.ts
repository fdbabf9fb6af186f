/**
 * Envoy's gRPC external authorization API v3,
 * `envoy.service.auth.v3.Authorization/Check`, served from the official
 * protos (vendor/envoy-ext-authz/, compiled into ./ext-authz.descriptor.json
 * by scripts/ext-authz-descriptor.ts) with @grpc/grpc-js. What it reads
 * from a CheckRequest and writes in a CheckResponse, field by field, is
 * docs/authz.md's "Envoy's contract"; test/e2e/authz-grpc-contract.test.ts holds
 * it to that.
 *
 * Envoy's contract for the answer: the call itself returns OK, and the
 * decision is inside. `status.code` OK with an `ok_response` (headers to
 * set, `append: false` so a caller's copy is overwritten, and
 * `headers_to_remove`) lets the request through; any other code denies it,
 * with the `denied_response` (status, headers, problem+json body) sent to
 * the client: PERMISSION_DENIED for 403, UNAUTHENTICATED for 401,
 * INVALID_ARGUMENT for a malformed check. A CheckRequest that does not
 * decode at all fails the call with INVALID_ARGUMENT, which Envoy, with
 * `failure_mode_allow: false`, answers with a deny too.
 */
import * as grpc from '@grpc/grpc-js';
import { fromJSON } from '@grpc/proto-loader';
import type { Authorizer, CheckDirection, ProxyCheck, Verdict } from './check.ts';
import { MalformedCheckError } from './errors.ts';
import descriptor from './ext-authz.descriptor.json' with { type: 'json' };

/** google.rpc.Code values (google/rpc/code.proto) the answers use. */
export const GrpcCode = {
  OK: 0,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/** The service's fully qualified name and its one method. */
export const EXT_AUTHZ_SERVICE = 'envoy.service.auth.v3.Authorization';

/** Read as Envoy writes it: field names as in the proto, enums as numbers, int64 as strings, unset fields absent. */
const LOADER_OPTIONS = { keepCase: true, longs: String, enums: Number, defaults: false, oneofs: true } as const;

/** The context extension (or, for a filter-wide setting, the gRPC metadata entry) that says which way the checked request goes. */
export const DIRECTION_EXTENSION = 'direction';
export const DIRECTION_METADATA = 'x-baton-direction';
/** The context extension naming an outbound request's target service, when the Host does not. */
export const TARGET_EXTENSION = 'target';

export interface GrpcFrontEnd {
  readonly server: grpc.Server;
  /** Binds `host:port`; resolves with the port bound. */
  listen(host: string, port: number): Promise<number>;
  /** Stops taking calls; calls in flight finish within `graceMs`, then are cut. */
  close(graceMs: number): Promise<void>;
}

export interface GrpcFrontEndOptions {
  readonly maxMessageBytes: number;
}

// A CheckRequest whose bytes do not decode: told apart from a decoded one, so the call can fail with INVALID_ARGUMENT.
const UNDECODABLE = Symbol('undecodable');

export function createGrpcFrontEnd(authorizer: Authorizer, options: GrpcFrontEndOptions): GrpcFrontEnd {
  const definition = authorizationService();
  const server = new grpc.Server({
    'grpc.max_receive_message_length': options.maxMessageBytes,
    'grpc.max_send_message_length': options.maxMessageBytes,
  });
  server.addService(definition, {
    Check(call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) {
      if (call.request === UNDECODABLE) {
        const error = new MalformedCheckError(
          'expected a CheckRequest (envoy.service.auth.v3), got bytes that do not decode as one',
          { extensions: { reason: 'undecodable' } },
        );
        authorizer.refuse('inbound', undefined, error);
        callback({ code: grpc.status.INVALID_ARGUMENT, details: error.message });
        return;
      }
      let check: ProxyCheck;
      try {
        check = readCheckRequest(call.request, call.metadata);
      } catch (error) {
        if (!(error instanceof MalformedCheckError)) throw error;
        callback(
          null,
          checkResponse(authorizer.refuse(directionOf(call.request, call.metadata) ?? 'inbound', undefined, error)),
        );
        return;
      }
      void authorizer.check(check).then(
        (verdict) => callback(null, checkResponse(verdict)),
        // check() answers every refusal itself; anything reaching here is a bug, and the call fails closed.
        () => callback({ code: grpc.status.INTERNAL, details: 'the authorizer failed to decide' }),
      );
    },
  });
  return {
    server,
    listen(host, port) {
      return new Promise((resolve, reject) => {
        server.bindAsync(
          `${host.includes(':') ? `[${host}]` : host}:${port}`,
          grpc.ServerCredentials.createInsecure(),
          (error, bound) => (error === null ? resolve(bound) : reject(error)),
        );
      });
    },
    close(graceMs) {
      return new Promise((resolve) => {
        const timer = setTimeout(() => server.forceShutdown(), graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}

/** The Authorization service from the vendored protos, its request decoder told to mark undecodable bytes instead of throwing. */
function authorizationService(): grpc.ServiceDefinition {
  const loaded = grpc.loadPackageDefinition(fromJSON(descriptor as Parameters<typeof fromJSON>[0], LOADER_OPTIONS));
  const service = (loaded.envoy as grpc.GrpcObject).service as grpc.GrpcObject;
  const authorization = ((service.auth as grpc.GrpcObject).v3 as grpc.GrpcObject)
    .Authorization as grpc.ServiceClientConstructor;
  const check = authorization.service.Check as grpc.MethodDefinition<unknown, unknown>;
  return {
    Check: {
      ...check,
      requestDeserialize(bytes: Buffer): unknown {
        try {
          return check.requestDeserialize(bytes);
        } catch {
          return UNDECODABLE;
        }
      },
    },
  };
}

// --- reading a CheckRequest ---

type Fields = Readonly<Record<string, unknown>>;

const HTTP_METHOD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}$/;
const MAX_HEADERS = 512;

/** A CheckRequest as the core's `ProxyCheck`; throws MalformedCheckError naming what is missing or wrong. */
export function readCheckRequest(request: unknown, metadata: grpc.Metadata): ProxyCheck {
  const attributes = object(field(request, 'attributes'));
  if (attributes === undefined) throw malformed('attributes', 'expected CheckRequest.attributes, got none');
  const http = object(field(object(field(attributes, 'request')), 'http'));
  if (http === undefined)
    throw malformed('request', 'expected attributes.request.http (an HTTP request to check), got none');
  const method = text(field(http, 'method'));
  if (method === undefined || !HTTP_METHOD.test(method))
    throw malformed('method', 'expected attributes.request.http.method, an HTTP method, got none or another value');
  const path = text(field(http, 'path'));
  if (path === undefined || path === '')
    throw malformed('path', 'expected attributes.request.http.path, the request target, got none');
  const { headers, rawHeaders } = headersOf(http);
  const direction = directionOf(request, metadata);
  if (direction === undefined)
    throw malformed(
      'direction',
      `expected the ${DIRECTION_EXTENSION} context extension (or ${DIRECTION_METADATA} metadata) to be inbound or outbound, got another value`,
    );
  const extensions = object(field(attributes, 'context_extensions'));
  const source = object(field(attributes, 'source'));
  const address = object(field(object(field(source, 'address')), 'socket_address'));
  return {
    direction,
    method,
    path,
    host: text(field(http, 'host')) || headers[':authority'] || headers.host,
    headers,
    rawHeaders,
    peer: { principal: text(field(source, 'principal')), certificate: text(field(source, 'certificate')) },
    target: text(field(extensions, TARGET_EXTENSION)) || undefined,
    protocol: text(field(http, 'protocol')),
    clientAddress: text(field(address, 'address')),
  };
}

/** inbound unless the proxy's configuration says otherwise; undefined for a value that is neither. */
function directionOf(request: unknown, metadata: grpc.Metadata): CheckDirection | undefined {
  const extension = text(
    field(object(field(object(field(request, 'attributes')), 'context_extensions')), DIRECTION_EXTENSION),
  );
  const meta = metadata.get(DIRECTION_METADATA);
  const value =
    extension ?? (meta.length === 1 && typeof meta[0] === 'string' ? meta[0] : meta.length === 0 ? undefined : '');
  if (value === undefined) return 'inbound';
  return value === 'inbound' || value === 'outbound' ? value : undefined;
}

/**
 * The checked request's fields: `headers` (a map, repeated fields merged by
 * Envoy) or, with Envoy's `encode_raw_headers`, `header_map` (each field
 * as sent, bytes). Names are lower-cased; for the raw form, repeated names
 * are joined with `, ` in `headers` and kept apart in `rawHeaders`, so two
 * Authorization fields are seen as two.
 */
function headersOf(http: Fields): { headers: Record<string, string>; rawHeaders: string[] } {
  const headers: Record<string, string> = Object.create(null) as Record<string, string>;
  const rawHeaders: string[] = [];
  const add = (name: string, value: string): void => {
    const lower = name.toLowerCase();
    rawHeaders.push(lower, value);
    headers[lower] = headers[lower] === undefined ? value : `${headers[lower]}, ${value}`;
  };
  const map = object(field(http, 'headers'));
  const list = field(object(field(http, 'header_map')), 'headers');
  if (map !== undefined) {
    const entries = Object.entries(map);
    if (entries.length > MAX_HEADERS)
      throw malformed('headers', `expected at most ${MAX_HEADERS} request headers, got ${entries.length}`);
    for (const [name, value] of entries) if (typeof value === 'string') add(name, value);
  } else if (Array.isArray(list)) {
    if (list.length > MAX_HEADERS)
      throw malformed('headers', `expected at most ${MAX_HEADERS} request headers, got ${list.length}`);
    for (const entry of list) {
      const name = text(field(entry, 'key'));
      const raw = field(entry, 'raw_value');
      const value = Buffer.isBuffer(raw) ? raw.toString('latin1') : text(field(entry, 'value'));
      if (name !== undefined && name !== '' && value !== undefined) add(name, value);
    }
  }
  return { headers, rawHeaders };
}

function field(value: unknown, name: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Fields)[name] : undefined;
}

function object(value: unknown): Fields | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value)
    ? (value as Fields)
    : undefined;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function malformed(reason: string, detail: string): InstanceType<typeof MalformedCheckError> {
  return new MalformedCheckError(detail, { extensions: { reason } });
}

// --- writing a CheckResponse ---

/** A verdict as Envoy's CheckResponse. */
export function checkResponse(verdict: Verdict): Fields {
  if (verdict.allowed) {
    return {
      status: { code: GrpcCode.OK },
      ok_response: { headers: headerOptions(verdict.set), headers_to_remove: [...verdict.remove] },
    };
  }
  const { error } = verdict;
  return {
    status: { code: grpcCodeOf(error.status), message: error.code },
    denied_response: { status: { code: error.status }, headers: headerOptions(verdict.headers), body: verdict.body },
  };
}

/** `[name, value, …]` as HeaderValueOptions that overwrite (`append: false`, what OkHttpResponse and DeniedHttpResponse document). */
function headerOptions(flat: readonly string[]): Fields[] {
  const out: Fields[] = [];
  for (let i = 0; i < flat.length; i += 2)
    out.push({ header: { key: flat[i], value: flat[i + 1] }, append: { value: false } });
  return out;
}

/** The gRPC status of a refusal, by its HTTP status: what Envoy's ext_authz documents and its stats count. */
export function grpcCodeOf(status: number): number {
  switch (status) {
    case 400:
      return GrpcCode.INVALID_ARGUMENT;
    case 401:
      return GrpcCode.UNAUTHENTICATED;
    case 429:
      return GrpcCode.RESOURCE_EXHAUSTED;
    case 503:
      return GrpcCode.UNAVAILABLE;
    case 504:
      return GrpcCode.DEADLINE_EXCEEDED;
    default:
      return status >= 500 ? GrpcCode.INTERNAL : GrpcCode.PERMISSION_DENIED;
  }
}
