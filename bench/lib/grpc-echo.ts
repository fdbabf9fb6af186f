/**
 * The gRPC app behind every path of scenario 8 (bench/grpc.bench.ts):
 * @grpc/grpc-js serving one unary method, `bench.v1.Echo/Call`, that answers
 * with the message it was sent. Messages are opaque bytes (an identity codec,
 * as src/demo/apps.ts uses JSON): no .proto and no (de)serialisation cost, so
 * what the paths differ by is what sits between client and server. It counts
 * calls by the `baton-caller` metadata an inbound sidecar adds, so the bench
 * can tell that a path went through baton.
 */
import * as grpc from '@grpc/grpc-js';

/** The method as a policy's `grpc:` rule names it (docs/policy.md, "gRPC methods"). */
export const ECHO_METHOD = 'bench.v1.Echo/Call';
/** The HTTP/2 `:path` of a call. */
export const ECHO_PATH = `/${ECHO_METHOD}`;

const bytes = (message: Buffer): Buffer => message;
const ECHO_SERVICE = {
  call: {
    path: ECHO_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: bytes,
    requestDeserialize: bytes,
    responseSerialize: bytes,
    responseDeserialize: bytes,
  },
} satisfies grpc.ServiceDefinition;

const EchoClient = grpc.makeGenericClientConstructor(ECHO_SERVICE, 'Echo');

export interface GrpcEcho {
  readonly port: number;
  /** Calls served whose `baton-caller` was `caller` ('' for none: a call that reached the app directly). */
  callsFrom(caller: string): number;
  close(): void;
}

export async function startGrpcEcho(): Promise<GrpcEcho> {
  const server = new grpc.Server();
  const callers = new Map<string, number>();
  server.addService(ECHO_SERVICE, {
    call(call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) {
      const caller = String(call.metadata.get('baton-caller')[0] ?? '');
      callers.set(caller, (callers.get(caller) ?? 0) + 1);
      callback(null, call.request);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  return { port, callsFrom: (caller) => callers.get(caller) ?? 0, close: () => server.forceShutdown() };
}

/**
 * One call with grpc-js, as an app makes it: to `target` (host:port), with
 * `authority` as the channel's authority when it goes through a sidecar's
 * outbound port (docs/clients.md, "gRPC"). Resolves with the reply, or
 * rejects with the gRPC status.
 */
export function callEcho(target: string, message: Buffer, authority?: string): Promise<Buffer> {
  const client = new EchoClient(
    target,
    grpc.credentials.createInsecure(),
    authority === undefined ? {} : { 'grpc.default_authority': authority },
  );
  const call = client as unknown as {
    call(
      request: Buffer,
      options: grpc.CallOptions,
      callback: (error: grpc.ServiceError | null, reply?: Buffer) => void,
    ): void;
  };
  return new Promise<Buffer>((resolve, reject) => {
    call.call(message, { deadline: Date.now() + 10_000 }, (error, reply) => {
      client.close();
      if (error !== null)
        reject(
          new Error(
            `gRPC ${ECHO_METHOD} to ${target}${authority === undefined ? '' : ` (authority ${authority})`} failed: status ${error.code}, ${error.details}`,
          ),
        );
      else resolve(reply as Buffer);
    });
  });
}

/** A gRPC message as it goes on the wire (length-prefixed, uncompressed): the body h2load sends. */
export function grpcFrame(message: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}
