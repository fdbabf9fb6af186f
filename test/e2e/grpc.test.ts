/**
 * gRPC through a real sidecar pair over mTLS (#27): a @grpc/grpc-js client
 * (the gateway's app) calls the gateway sidecar's outbound port with h2c
 * prior knowledge, naming `orders` as its authority; the gateway sidecar
 * checks the edge, exchanges the user's token (RFC 8693) and forwards over
 * HTTP/2 on mTLS (ALPN h2) to the orders sidecar, which verifies, checks
 * the chain and forwards over h2c to a @grpc/grpc-js server. All four call
 * shapes, deadlines, cancellation, large messages, metadata both ways, a
 * method the policy refuses and a refused token, each as gRPC sees it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { type Mesh, startMesh } from '../../src/demo/mesh.ts';
import { callGraph } from '../helpers/policy.ts';

const PROTO = fileURLToPath(new URL('../fixtures/grpc/shop.proto', import.meta.url));

const POLICY = callGraph(
  `
gateway:
  entrypoint: true
orders:
  accepts:
    - { name: orders-api, from: gateway, grpc: ["shop.v1.Orders/*"], scopes: "shop" }
payments: {}
`,
  { name: 'grpc', maxDepth: 4 },
);

interface OrderMessage {
  id: string;
  subject: string;
  caller: string;
  payload_bytes: number;
  metadata: string;
}
type Client = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

const definition = protoLoader.loadSync(PROTO, { keepCase: true, longs: Number });
const shop = (
  grpc.loadPackageDefinition(definition) as unknown as {
    shop: { v1: { Orders: grpc.ServiceClientConstructor; Admin: grpc.ServiceClientConstructor } };
  }
).shop.v1;

/** The orders app: echoes who the sidecar says is calling, and the metadata it got. */
function ordersServer(cancelled: { count: number }): grpc.Server {
  const server = new grpc.Server();
  const who = (metadata: grpc.Metadata, id: string, bytes = 0): OrderMessage => ({
    id,
    subject: String(metadata.get('baton-subject')[0] ?? ''),
    caller: String(metadata.get('baton-caller')[0] ?? ''),
    payload_bytes: bytes,
    metadata: String(metadata.get('x-shop-tag')[0] ?? ''),
  });
  server.addService(shop.Orders.service, {
    GetOrder(
      call: grpc.ServerUnaryCall<{ id: string; payload: Buffer; delay_ms: number }, OrderMessage>,
      callback: grpc.sendUnaryData<OrderMessage>,
    ) {
      const answer = (): void => {
        call.sendMetadata(new grpc.Metadata());
        const trailer = new grpc.Metadata();
        trailer.set('x-served-by', 'orders');
        callback(null, who(call.metadata, call.request.id, call.request.payload.length), trailer);
      };
      if (call.request.delay_ms > 0) setTimeout(answer, call.request.delay_ms);
      else answer();
    },
    WatchOrders(call: grpc.ServerWritableStream<{ id: string; count: number; delay_ms: number }, OrderMessage>) {
      let sent = 0;
      const next = (): void => {
        if (call.cancelled) return;
        if (sent === call.request.count) return void call.end();
        call.write(who(call.metadata, `${call.request.id}-${sent++}`));
        setTimeout(next, call.request.delay_ms);
      };
      call.on('cancelled', () => cancelled.count++);
      next();
    },
    UploadOrders(
      call: grpc.ServerReadableStream<{ id: string; payload: Buffer }, OrderMessage>,
      callback: grpc.sendUnaryData<OrderMessage>,
    ) {
      const ids: string[] = [];
      let bytes = 0;
      call.on('data', (message: { id: string; payload: Buffer }) => {
        ids.push(message.id);
        bytes += message.payload.length;
      });
      call.on('end', () => callback(null, who(call.metadata, ids.join(','), bytes)));
    },
    Chat(call: grpc.ServerDuplexStream<{ id: string }, OrderMessage>) {
      call.on('data', (message: { id: string }) => call.write(who(call.metadata, `re:${message.id}`)));
      call.on('end', () => call.end());
    },
  });
  server.addService(shop.Admin.service, {
    Purge(_call: grpc.ServerUnaryCall<unknown, OrderMessage>, callback: grpc.sendUnaryData<OrderMessage>) {
      callback(null, { id: 'purged', subject: '', caller: '', payload_bytes: 0, metadata: '' });
    },
  });
  return server;
}

describe('gRPC through a sidecar pair over mTLS', { timeout: 120_000 }, () => {
  let mesh: Mesh;
  let server: grpc.Server;
  let dir: string;
  let token: string;
  let orders: Client;
  let admin: Client;
  const cancelled = { count: 0 };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-grpc-'));
    server = ordersServer(cancelled);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      ),
    );
    const policyFile = join(dir, 'callgraph.yaml');
    writeFileSync(policyFile, POLICY);
    mesh = await startMesh({ transport: 'mtls', policyFile, apps: { orders: port } });
    token = await mesh.userToken({ sub: 'alice', scope: 'shop' });
    // The gateway's app, calling through its sidecar's outbound port: h2c with prior knowledge, authority = the service.
    const target = `127.0.0.1:${mesh.services.gateway.outbound}`;
    const options = {
      'grpc.default_authority': 'orders',
      'grpc.max_receive_message_length': 8 * 1024 * 1024,
      'grpc.max_send_message_length': 8 * 1024 * 1024,
    };
    orders = new shop.Orders(target, grpc.credentials.createInsecure(), options) as unknown as Client;
    admin = new shop.Admin(target, grpc.credentials.createInsecure(), options) as unknown as Client;
  });

  after(async () => {
    orders?.close();
    admin?.close();
    server?.forceShutdown();
    await mesh?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  const metadata = (extra: Record<string, string> = {}, bearer = token): grpc.Metadata => {
    const m = new grpc.Metadata();
    m.set('authorization', `Bearer ${bearer}`);
    for (const [key, value] of Object.entries(extra)) m.set(key, value);
    return m;
  };

  function unary(
    client: Client,
    method: string,
    request: object,
    meta: grpc.Metadata,
    options: grpc.CallOptions = {},
  ): Promise<{ error: grpc.ServiceError | null; message?: OrderMessage; trailers?: grpc.Metadata }> {
    return new Promise((resolve) => {
      let trailers: grpc.Metadata | undefined;
      const call = (
        client[method] as (
          r: object,
          m: grpc.Metadata,
          o: grpc.CallOptions,
          cb: (e: grpc.ServiceError | null, m?: OrderMessage) => void,
        ) => grpc.ClientUnaryCall
      )(request, meta, options, (error, message) => {
        setImmediate(() =>
          resolve({
            error,
            ...(message === undefined ? {} : { message }),
            ...(trailers === undefined ? {} : { trailers }),
          }),
        );
      });
      call.on('status', (status: grpc.StatusObject) => (trailers = status.metadata));
    });
  }

  it('unary: the app sees the user and the calling service, and metadata and trailers pass both ways', async () => {
    const { error, message, trailers } = await unary(
      orders,
      'GetOrder',
      { id: 'o-1', payload: Buffer.alloc(0) },
      metadata({ 'x-shop-tag': 'blue' }),
    );
    assert.equal(error, null);
    assert.deepEqual(message, { id: 'o-1', subject: 'alice', caller: 'gateway', payload_bytes: 0, metadata: 'blue' });
    assert.equal(trailers?.get('x-served-by')[0], 'orders');
  });

  it('server streaming: every message in order', async () => {
    const call = (orders.WatchOrders as (r: object, m: grpc.Metadata) => grpc.ClientReadableStream<OrderMessage>)(
      { id: 'w', count: 5, delay_ms: 1 },
      metadata(),
    );
    const ids: string[] = [];
    for await (const message of call) ids.push((message as OrderMessage).id);
    assert.deepEqual(ids, ['w-0', 'w-1', 'w-2', 'w-3', 'w-4']);
  });

  it('client streaming: every message reaches the server', async () => {
    const answer = await new Promise<OrderMessage>((resolve, reject) => {
      const call = (
        orders.UploadOrders as (
          m: grpc.Metadata,
          cb: (e: grpc.ServiceError | null, r?: OrderMessage) => void,
        ) => grpc.ClientWritableStream<object>
      )(metadata(), (error, reply) => (error ? reject(error) : resolve(reply as OrderMessage)));
      for (let i = 0; i < 4; i++) call.write({ id: `u${i}`, payload: Buffer.alloc(1000) });
      call.end();
    });
    assert.equal(answer.id, 'u0,u1,u2,u3');
    assert.equal(answer.payload_bytes, 4000);
    assert.equal(answer.subject, 'alice');
  });

  it('bidirectional streaming: answers interleave with requests', async () => {
    const call = (orders.Chat as (m: grpc.Metadata) => grpc.ClientDuplexStream<object, OrderMessage>)(metadata());
    const got: string[] = [];
    for (const id of ['a', 'b', 'c']) {
      call.write({ id });
      const [message] = (await new Promise((resolve) => call.once('data', (m: OrderMessage) => resolve([m])))) as [
        OrderMessage,
      ];
      got.push(message.id);
    }
    call.end();
    await new Promise((resolve) => call.on('end', resolve).resume());
    assert.deepEqual(got, ['re:a', 're:b', 're:c']);
  });

  it('large messages: 3 MiB each way', async () => {
    const { error, message } = await unary(
      orders,
      'GetOrder',
      { id: 'big', payload: Buffer.alloc(3 * 1024 * 1024, 7) },
      metadata(),
    );
    assert.equal(error, null);
    assert.equal(message?.payload_bytes, 3 * 1024 * 1024);
  });

  it('deadlines: a call slower than its deadline ends DEADLINE_EXCEEDED at the client, in time', async () => {
    const started = Date.now();
    const { error } = await unary(
      orders,
      'GetOrder',
      { id: 'slow', payload: Buffer.alloc(0), delay_ms: 2_000 },
      metadata(),
      { deadline: Date.now() + 300 },
    );
    assert.equal(error?.code, grpc.status.DEADLINE_EXCEEDED);
    assert.ok(Date.now() - started < 1_500, `ended after ${Date.now() - started} ms`);
  });

  it('cancellation: a client that cancels a stream cancels it at the server too', async () => {
    const before = cancelled.count;
    const call = (orders.WatchOrders as (r: object, m: grpc.Metadata) => grpc.ClientReadableStream<OrderMessage>)(
      { id: 'c', count: 1_000, delay_ms: 20 },
      metadata(),
    );
    call.on('error', () => {});
    await new Promise((resolve) => call.once('data', resolve));
    call.cancel();
    const deadline = Date.now() + 5_000;
    while (cancelled.count === before && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(cancelled.count, before + 1, 'the server saw the cancellation');
  });

  it('a method the policy does not allow: PERMISSION_DENIED naming the baton code, and the server never called', async () => {
    const { error } = await unary(admin, 'Purge', { id: 'x' }, metadata());
    assert.equal(error?.code, grpc.status.PERMISSION_DENIED);
    assert.match(error?.details ?? '', /^BATON_POLICY_DENIED: /);
  });

  it('a refused token: UNAUTHENTICATED naming the baton code', async () => {
    const { error } = await unary(
      orders,
      'GetOrder',
      { id: 'x', payload: Buffer.alloc(0) },
      metadata({}, `${token.slice(0, -4)}AAAA`),
    );
    assert.equal(error?.code, grpc.status.UNAUTHENTICATED);
    assert.match(error?.details ?? '', /^BATON_/);
  });
});
