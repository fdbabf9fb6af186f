/**
 * Envoy's side of the gRPC ext_authz API, as far as a test can play it: a
 * @grpc/grpc-js client built from the vendored official protos
 * (vendor/envoy-ext-authz/, loaded from the .proto files themselves, not
 * from the descriptor baton compiles them into), so a field baton reads or
 * writes under another number or type than Envoy's fails here.
 *
 * No Envoy binary can be installed on these machines; the tests that use
 * this say so in their output.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

export const VENDOR_DIR = fileURLToPath(new URL('../../vendor/envoy-ext-authz/', import.meta.url));

/** Written as Envoy's ext_authz filter builds it (the fields baton reads; others as Envoy fills them). */
export interface CheckRequestFields {
  readonly method?: string;
  readonly path?: string;
  readonly host?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Envoy's `encode_raw_headers: true`: each field as sent, bytes. Replaces `headers`. */
  readonly rawHeaders?: ReadonlyArray<readonly [string, string]>;
  readonly principal?: string;
  /** URL-encoded PEM, as Envoy's `include_peer_certificate` sends it. */
  readonly certificate?: string;
  readonly contextExtensions?: Readonly<Record<string, string>>;
  readonly protocol?: string;
}

export interface HeaderValueOption {
  header: { key: string; value: string };
  append?: { value: boolean };
}

export interface CheckResponse {
  status?: { code?: number; message?: string };
  ok_response?: { headers?: HeaderValueOption[]; headers_to_remove?: string[] };
  denied_response?: { status?: { code?: number }; headers?: HeaderValueOption[]; body?: string };
  http_response?: string;
}

export interface ExtAuthzClient {
  check(
    request: unknown,
    options?: { deadlineMs?: number; metadata?: Readonly<Record<string, string>> },
  ): Promise<CheckResponse>;
  /** The raw call, for bytes that are not a CheckRequest. */
  checkBytes(bytes: Buffer, options?: { deadlineMs?: number }): Promise<CheckResponse>;
  close(): void;
}

type ServiceClient = grpc.Client & {
  Check: (
    request: unknown,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: (error: grpc.ServiceError | null, response?: CheckResponse) => void,
  ) => void;
};

let loaded: grpc.ServiceClientConstructor | undefined;

/** The Authorization service's client class, from the vendored .proto files, read as Envoy's generated code reads them. */
export function authorizationClient(): grpc.ServiceClientConstructor {
  if (loaded !== undefined) return loaded;
  const definition = loadSync(join(VENDOR_DIR, 'envoy/service/auth/v3/external_auth.proto'), {
    includeDirs: [VENDOR_DIR],
    keepCase: true,
    longs: String,
    enums: Number,
    defaults: false,
    oneofs: true,
  });
  const v3 = ((grpc.loadPackageDefinition(definition).envoy as grpc.GrpcObject).service as grpc.GrpcObject)
    .auth as grpc.GrpcObject;
  loaded = (v3.v3 as grpc.GrpcObject).Authorization as grpc.ServiceClientConstructor;
  return loaded;
}

export function connectExtAuthz(port: number): ExtAuthzClient {
  const Client = authorizationClient();
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as ServiceClient;
  const raw = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const deadline = (ms: number | undefined): grpc.CallOptions => ({ deadline: Date.now() + (ms ?? 10_000) });
  return {
    check(request, options = {}) {
      const metadata = new grpc.Metadata();
      for (const [key, value] of Object.entries(options.metadata ?? {})) metadata.set(key, value);
      return new Promise((resolve, reject) =>
        client.Check(request, metadata, deadline(options.deadlineMs), (error, response) =>
          error === null ? resolve(response ?? {}) : reject(error),
        ),
      );
    },
    checkBytes(bytes, options = {}) {
      const method = `/envoy.service.auth.v3.Authorization/Check`;
      return new Promise((resolve, reject) =>
        raw.makeUnaryRequest(
          method,
          (b: Buffer) => b,
          (b: Buffer) => b,
          bytes,
          new grpc.Metadata(),
          deadline(options.deadlineMs),
          (error: grpc.ServiceError | null, response?: Buffer) =>
            error === null ? resolve({ http_response: response?.toString('base64') }) : reject(error),
        ),
      );
    },
    close() {
      client.close();
      raw.close();
    },
  };
}

/** A CheckRequest as Envoy's HTTP ext_authz filter sends it for one request. */
export function checkRequest(fields: CheckRequestFields): unknown {
  const http: Record<string, unknown> = {
    id: '1234567890',
    method: fields.method ?? 'GET',
    path: fields.path ?? '/',
    host: fields.host ?? '',
    scheme: 'http',
    protocol: fields.protocol ?? 'HTTP/1.1',
    size: '0',
  };
  if (fields.rawHeaders !== undefined)
    http.header_map = {
      headers: fields.rawHeaders.map(([key, value]) => ({ key, raw_value: Buffer.from(value, 'latin1') })),
    };
  else
    http.headers = {
      ':authority': fields.host ?? '',
      ':method': fields.method ?? 'GET',
      ':path': fields.path ?? '/',
      ...fields.headers,
    };
  return {
    attributes: {
      source: {
        address: { socket_address: { address: '10.0.0.7', port_value: 43210 } },
        principal: fields.principal ?? '',
        certificate: fields.certificate ?? '',
      },
      destination: { address: { socket_address: { address: '10.0.0.8', port_value: 8080 } }, principal: '' },
      request: { time: { seconds: String(Math.floor(Date.now() / 1000)), nanos: 0 }, http },
      context_extensions: { ...fields.contextExtensions },
    },
  };
}

/** The headers of an ok_response or denied_response as a lower-case map; also checks each is written to overwrite (`append: false`). */
export function headersOf(options: readonly HeaderValueOption[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const option of options ?? []) {
    if (option.append?.value !== false)
      throw new Error(
        `expected ${option.header.key} with append: false (overwrite), got ${JSON.stringify(option.append)}`,
      );
    out[option.header.key] = option.header.value;
  }
  return out;
}
