/**
 * The socket data plane end to end: a tiny proxy built from createHttp1Server
 * (src/dataplane/server.ts) and createUpstreams (src/dataplane/pool.ts)
 * in front of real node:http servers on loopback, driven by raw node:net
 * clients where the bytes on the wire are the behaviour under test.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer as createNetServer, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { UPSTREAM_FRAMING, UPSTREAM_TIMEOUT, UPSTREAM_UNREACHABLE } from '../../src/dataplane/forward-call.ts';
import { listenOnLoopback, waitFor } from '../helpers/net.ts';
import type { HttpStream } from '../../src/dataplane/stream.ts';
import {
  BOUNDED,
  cleanUp,
  cleanUpAfterEach,
  collect,
  count,
  type Forward,
  get,
  httpUpstream,
  type Outcome,
  type Proxy,
  type ProxyOptions,
  proxyTo,
  rawClient,
  rawUpstream,
  type Reading,
  responses,
  type RawClient,
  type Served,
  summary,
  within,
} from '../helpers/dataplane.ts';

cleanUpAfterEach();

/** Serves `size` bytes of Content-Length body in 64 KiB writes that honour backpressure. */
async function bigUpstream(size: number): Promise<Served & { written(): number; blocked(): boolean }> {
  let written = 0;
  let blocked = false;
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const served = await httpUpstream((_req, res) => {
    res.writeHead(200, { 'content-length': size });
    const pump = (): void => {
      while (written < size) {
        written += chunk.length;
        if (!res.write(chunk)) {
          blocked = true;
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
  });
  return { ...served, written: () => written, blocked: () => blocked };
}

describe('forwarding through the socket data plane', () => {
  it(
    'tells a kept-alive client the idle timeout as node:http does, and dates an answer that came without Date',
    BOUNDED,
    async () => {
      const upstream = await rawUpstream((socket) => {
        socket.once('data', () => socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'));
      });
      const proxy = await proxyTo(upstream.port, { keepAliveTimeoutMs: 5_000 });
      const client = await rawClient(proxy.port);
      client.socket.write(get('/'));
      const [answer] = responses(await client.until((b) => responses(b).list.length === 1, 'the answer')).list;
      assert.equal(answer?.headers['keep-alive'], 'timeout=5');
      assert.ok(Number.isFinite(Date.parse(answer?.headers.date ?? '')), `a Date: ${answer?.head}`);
    },
  );

  it('passes header bytes outside ASCII (obs-text) through as the same bytes, both ways', BOUNDED, async () => {
    let seen: string | undefined;
    const upstream = await httpUpstream((req, res) => {
      seen = req.headers['x-name'] as string;
      req.resume();
      // node:http writes a header string as latin1: this is the byte 0xE9 on the wire.
      res.writeHead(200, { 'x-reply': 'caf\u00e9', 'content-length': '0' }).end();
    });
    const proxy = await proxyTo(upstream.port);
    const client = await rawClient(proxy.port);
    client.socket.write(
      Buffer.concat([
        Buffer.from('GET / HTTP/1.1\r\nHost: test\r\nX-Name: caf'),
        Buffer.from([0xe9]),
        Buffer.from('\r\n\r\n'),
      ]),
    );
    const bytes = await client.until((b) => responses(b).list.length === 1, 'the answer');
    assert.equal(seen, 'caf\u00e9', 'the app read the one byte 0xE9');
    assert.ok(
      bytes.includes(Buffer.concat([Buffer.from('caf'), Buffer.from([0xe9]), Buffer.from('\r\n')])),
      'the client got the one byte 0xE9',
    );
  });

  it('answers three GETs pipelined in one packet in order, over one upstream connection', BOUNDED, async () => {
    const upstream = await httpUpstream((req, res) => res.end(`you asked for ${req.url}`));
    const client = await rawClient((await proxyTo(upstream.port)).port);
    client.socket.write(get('/a') + get('/b') + get('/c'));
    const { list, rest } = responses(await client.until(count(3), 'three responses'));
    assert.deepEqual(summary(list), [
      [200, 'you asked for /a'],
      [200, 'you asked for /b'],
      [200, 'you asked for /c'],
    ]);
    assert.equal(rest.length, 0);
    assert.equal(upstream.connections(), 1);
    assert.equal(client.closed, false);
  });

  it('passes a 1 MiB Content-Length request body through byte for byte', BOUNDED, async () => {
    const received: Buffer[] = [];
    const upstream = await httpUpstream(async (req, res) => res.end(String(received.push(await collect(req)))));
    const client = await rawClient((await proxyTo(upstream.port)).port);
    const body = randomBytes(1024 * 1024);
    client.socket.write(`POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: ${body.length}\r\n\r\n`);
    client.socket.write(body);
    assert.deepEqual(summary(responses(await client.until(count(1), 'the response', 15_000)).list), [[200, '1']]);
    assert.ok(
      received[0]?.equals(body),
      `the app got ${received[0]?.length} bytes that differ from the ${body.length} sent`,
    );
  });

  it(
    'hands a chunked request body to the app as the same bytes, without chunk extensions or trailers',
    BOUNDED,
    async () => {
      const seen: Array<{ body: string; trailers: object; rawTrailers: string[] }> = [];
      const upstream = await httpUpstream(async (req, res) => {
        seen.push({ body: (await collect(req)).toString(), trailers: req.trailers, rawTrailers: req.rawTrailers });
        res.end('ok');
      });
      const client = await rawClient((await proxyTo(upstream.port)).port);
      client.socket.write(
        'POST /chunks HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n5;name=value\r\nhello\r\n6;ext\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\n',
      );
      assert.deepEqual(summary(responses(await client.until(count(1), 'the response')).list), [[200, 'ok']]);
      assert.deepEqual(seen, [{ body: 'hello world', trailers: {}, rawTrailers: [] }]);
    },
  );

  describe('a chunked response', () => {
    const chunkedUpstream = (): Promise<Served> =>
      httpUpstream((_req, res) => {
        res.write('hello ');
        setImmediate(() => res.end('world'));
      });

    it('reaches an HTTP/1.1 client with its chunked framing unchanged', BOUNDED, async () => {
      const client = await rawClient((await proxyTo((await chunkedUpstream()).port)).port);
      client.socket.write(get('/chunked'));
      const [response] = responses(await client.until(count(1), 'the response')).list;
      assert.equal(response?.headers['transfer-encoding'], 'chunked');
      assert.equal(response.head.match(/transfer-encoding/gi)?.length, 1);
      assert.equal(response.framed.toString(), '6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n');
      assert.equal(response.body.toString(), 'hello world');
      assert.equal(client.closed, false);
    });

    it('reaches an HTTP/1.0 client unframed, and the connection closes', BOUNDED, async () => {
      const client = await rawClient((await proxyTo((await chunkedUpstream()).port)).port);
      client.socket.write(get('/chunked', 'GET', '1.0'));
      const { list } = responses(await client.whenClosed(), { closed: true });
      assert.deepEqual(
        list.map((r) => [r.status, r.headers['transfer-encoding'], r.headers.connection, r.body.toString()]),
        [[200, undefined, 'close', 'hello world']],
      );
    });
  });

  describe('Expect: 100-continue', () => {
    const expecting = 'POST /upload HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n';

    it(
      'is answered with 100 Continue only once the handler forwards, and the body then goes through',
      BOUNDED,
      async () => {
        const seen: Array<{ body: string; expect: string | undefined }> = [];
        const upstream = await httpUpstream(async (req, res) => {
          seen.push({ body: (await collect(req)).toString(), expect: req.headers.expect });
          res.end('got it');
        });
        const early: { client?: RawClient; bytesBeforeForward?: number } = {};
        const proxy = await proxyTo(upstream.port, {
          handle: async (x, forward) => {
            await delay(100);
            early.bytesBeforeForward = early.client?.bytes().length;
            return forward(x);
          },
        });
        const client = (early.client = await rawClient(proxy.port));
        client.socket.write(expecting);
        await client.until((b) => b.includes('\r\n\r\n'), '100 Continue');
        assert.equal(early.bytesBeforeForward, 0, 'bytes reached the client before the handler forwarded');
        assert.equal(client.bytes().toString(), 'HTTP/1.1 100 Continue\r\n\r\n');
        client.socket.write('hello');
        assert.deepEqual(summary(responses(await client.until(count(2), 'the final response')).list), [
          [100, ''],
          [200, 'got it'],
        ]);
        assert.deepEqual(seen, [{ body: 'hello', expect: undefined }]);
      },
    );

    it('is not answered when the handler refuses, and the connection closes after the 403', BOUNDED, async () => {
      const upstream = await httpUpstream((_req, res) => res.end('never'));
      const refuse = async (x: HttpStream): Outcome => {
        x.respond(403, ['content-type', 'text/plain'], 'not you');
        return 403;
      };
      const proxy = await proxyTo(upstream.port, { handle: refuse });
      const client = await rawClient(proxy.port);
      client.socket.write(expecting);
      const bytes = await client.whenClosed();
      assert.ok(!bytes.includes('100 Continue'), bytes.toString());
      const { list, rest } = responses(bytes, { closed: true });
      assert.deepEqual(
        list.map((r) => [r.status, r.headers.connection, r.body.toString()]),
        [[403, 'close', 'not you']],
      );
      assert.equal(rest.length, 0);
      assert.equal(upstream.connections(), 0);
    });
  });

  describe('responses without a body', () => {
    it(
      'a HEAD answer with Content-Length carries no body and the connection serves the next GET',
      BOUNDED,
      async () => {
        const upstream = await httpUpstream((req, res) =>
          res.setHeader('content-length', 11).end(req.method === 'HEAD' ? undefined : 'hello world'),
        );
        const client = await rawClient((await proxyTo(upstream.port)).port);
        const headFirst: Reading = { bodiless: (i) => i === 0 };
        client.socket.write(get('/h', 'HEAD'));
        const [head] = responses(await client.until(count(1, headFirst), 'the HEAD response'), headFirst).list;
        assert.equal(head?.headers['content-length'], '11');
        client.socket.write(get('/h'));
        const { list, rest } = responses(await client.until(count(2, headFirst), 'the GET response'), headFirst);
        assert.deepEqual(summary(list), [
          [200, ''],
          [200, 'hello world'],
        ]);
        assert.equal(rest.length, 0);
      },
    );

    it('204 and 304 answers carry no body', BOUNDED, async () => {
      const upstream = await httpUpstream((req, res) => {
        if (req.url === '/204') res.writeHead(204).end();
        else if (req.url === '/304') res.writeHead(304, { etag: '"v1"' }).end();
        else res.end('after');
      });
      const client = await rawClient((await proxyTo(upstream.port)).port);
      client.socket.write(get('/204') + get('/304') + get('/after'));
      const { list, rest } = responses(await client.until(count(3), 'three responses'));
      assert.deepEqual(summary(list), [
        [204, ''],
        [304, ''],
        [200, 'after'],
      ]);
      assert.equal(rest.length, 0);
    });

    it('1xx interim answers from the upstream (103, 102) are not relayed, the final 200 is', BOUNDED, async () => {
      const upstream = await httpUpstream((_req, res) => {
        res.writeEarlyHints({ link: '</style.css>; rel=preload' });
        res.writeProcessing();
        setImmediate(() => res.end('final'));
      });
      const client = await rawClient((await proxyTo(upstream.port)).port);
      client.socket.write(get('/early'));
      const { list, rest } = responses(
        await client.until((b) => responses(b).list.some((r) => r.status >= 200), 'the final response'),
      );
      assert.deepEqual(summary(list), [[200, 'final']]);
      assert.equal(rest.length, 0);
    });
  });

  it('relays a response framed by the upstream closing, whole, and closes the client connection', BOUNDED, async () => {
    const upstream = await rawUpstream((socket) => socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\n\r\nabc')));
    const proxy = await proxyTo(upstream.port);
    const client = await rawClient(proxy.port);
    client.socket.write(get('/until-close'));
    const { list } = responses(await client.whenClosed(), { closed: true });
    assert.deepEqual(
      list.map((r) => [r.status, r.headers.connection, r.body.toString()]),
      [[200, 'close', 'abc']],
    );
    assert.equal(await within(proxy.outcomes[0] as Outcome, 5_000, 'the forward to settle'), 200);
  });

  describe('backpressure', () => {
    /** A client that reads nothing for `pauseMs`, then everything: what the proxy buffered for it meanwhile, and what it got. */
    async function slowReader(upstream: Awaited<ReturnType<typeof bigUpstream>>, size: number, pauseMs: number) {
      let drainListenersBefore = -1;
      const handle = (x: HttpStream, forward: (x: HttpStream) => Outcome): Outcome => {
        drainListenersBefore = x.socket.listenerCount('drain');
        return forward(x);
      };
      const proxy = await proxyTo(upstream.port, { handle });
      const client = connect(proxy.port, '127.0.0.1');
      cleanUp(() => client.destroy());
      client.pause();
      client.write(get('/big'));
      await within(once(client, 'connect'), 5_000, 'a connection');
      await delay(pauseMs);
      const proxySide = (proxy.streams[0] as HttpStream).socket;
      const whilePaused = {
        buffered: proxySide.writableLength,
        upstreamWritten: upstream.written(),
        upstreamBlocked: upstream.blocked(),
      };
      let received = 0;
      let head = Buffer.alloc(0);
      let headLength = -1;
      const all = new Promise<void>((resolve) =>
        client.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (headLength === -1 && (head = Buffer.concat([head, chunk])).includes('\r\n\r\n'))
            headLength = head.indexOf('\r\n\r\n') + 4;
          if (headLength !== -1 && received - headLength >= size) resolve();
        }),
      );
      client.resume();
      await within(all, 20_000, `${size} bytes`);
      const outcome = await within(proxy.outcomes[0] as Outcome, 5_000, 'the forward to settle');
      await delay(50);
      return {
        whilePaused,
        body: received - headLength,
        outcome,
        drainListenersBefore,
        drainListenersAfter: proxySide.listenerCount('drain'),
      };
    }

    it('a client that does not read holds the upstream back; it then gets all 32 MiB', BOUNDED, async () => {
      const size = 32 * 1024 * 1024;
      const { whilePaused, outcome, body } = await slowReader(await bigUpstream(size), size, 500);
      assert.ok(whilePaused.upstreamBlocked, "the upstream's res.write never returned false");
      assert.ok(whilePaused.upstreamWritten < size, `the upstream wrote all ${size} bytes to a client that read none`);
      assert.ok(
        whilePaused.buffered < 2 * 1024 * 1024,
        `the proxy buffered ${whilePaused.buffered} bytes for a paused client`,
      );
      assert.deepEqual([outcome, body], [200, size]);
    });

    it(
      'leaves no drain listeners behind on the kept-alive client connection once the response is through',
      BOUNDED,
      async () => {
        const { outcome, drainListenersBefore, drainListenersAfter } = await slowReader(
          await bigUpstream(4 * 1024 * 1024),
          4 * 1024 * 1024,
          200,
        );
        assert.equal(outcome, 200);
        assert.equal(
          drainListenersAfter,
          drainListenersBefore,
          `${drainListenersAfter - drainListenersBefore} drain listener(s) left on the client socket`,
        );
      },
    );

    it(
      'an answer that completes while its client is backed up leaves the upstream connection readable for the next request',
      BOUNDED,
      async () => {
        const upstream = await httpUpstream((req, res) => {
          req.resume();
          res.end('hello');
        });
        // Every write to the client reports a full buffer, so the upstream is paused on the very chunk that completes the answer.
        const handle = (x: HttpStream, forward: Forward): Outcome => {
          const write = x.socket.write.bind(x.socket) as (chunk: string | Buffer) => boolean;
          (x.socket as unknown as { write: (chunk: string | Buffer) => boolean }).write = (chunk) => (
            write(chunk),
            false
          );
          return forward(x);
        };
        const proxy = await proxyTo(upstream.port, { handle });
        const client = await rawClient(proxy.port);
        client.socket.write(get('/one'));
        await client.until((bytes) => responses(bytes).list.length === 1, 'the first answer');
        client.socket.write(get('/two'));
        await client.until(
          (bytes) => responses(bytes).list.length === 2,
          'the second answer, on the same pooled upstream connection',
          3_000,
        );
        assert.equal(upstream.connections(), 1);
      },
    );
  });

  describe('a client going away mid-response', () => {
    /** The upstream sends a head and a first part, then nothing; `leave` is how the client goes once it has read that part. */
    async function abandon(
      leave: (socket: Socket) => void,
    ): Promise<{ upstreamCut: Promise<boolean>; outcome: Outcome }> {
      let cut: (finished: boolean) => void = () => {};
      const upstreamCut = new Promise<boolean>((resolve) => (cut = resolve));
      const upstream = await httpUpstream((_req, res) => {
        res.on('close', () => cut(res.writableFinished));
        res.writeHead(200, { 'content-type': 'text/plain' }).write('first part');
      });
      // A long upstream timeout, so that only the client's going can cut the upstream within the test's bounds.
      const proxy = await proxyTo(upstream.port, { timeoutMs: 20_000 });
      const client = await rawClient(proxy.port);
      client.socket.write(get('/stream'));
      await client.until((b) => b.includes('first part'), 'the first part');
      leave(client.socket);
      return { upstreamCut, outcome: proxy.outcomes[0] as Outcome };
    }

    it('a reset (RST) cuts the upstream connection and the forward resolves with the status', BOUNDED, async () => {
      const { upstreamCut, outcome } = await abandon((socket) => socket.resetAndDestroy());
      assert.equal(await within(upstreamCut, 3_000, "the upstream response's close"), false);
      assert.equal(await within(outcome, 3_000, 'the forward to settle'), 200);
    });

    it(
      'a close (FIN) while the upstream is silent cuts the upstream connection and the forward resolves',
      BOUNDED,
      async () => {
        const { upstreamCut, outcome } = await abandon((socket) => socket.destroy());
        assert.equal(
          await within(upstreamCut, 3_000, "the upstream response's close after the client closed its connection"),
          false,
        );
        assert.equal(await within(outcome, 3_000, 'the forward to settle'), 200);
      },
    );
  });

  describe('upstream failures before an answer', () => {
    async function answer(upstreamPort: number, timeoutMs = 5_000) {
      const proxy = await proxyTo(upstreamPort, { timeoutMs });
      const client = await rawClient(proxy.port);
      const started = performance.now();
      client.socket.write(get('/'));
      const [response] = responses(await client.until(count(1), 'a response', timeoutMs + 5_000)).list;
      const elapsed = performance.now() - started;
      const outcome = await within(proxy.outcomes[0] as Outcome, 1_000, 'the forward to settle');
      return {
        status: response?.status,
        body: response?.body.toString(),
        outcome,
        reason: proxy.failures[0]?.reason,
        elapsed,
      };
    }

    it('a silent upstream: forward rejects with UPSTREAM_TIMEOUT after timeoutMs (504)', BOUNDED, async () => {
      const { status, body, outcome, elapsed } = await answer((await httpUpstream(() => {})).port, 300);
      assert.deepEqual([status, body, outcome], [504, UPSTREAM_TIMEOUT, UPSTREAM_TIMEOUT]);
      assert.ok(elapsed >= 250 && elapsed < 3_300, `answered after ${Math.round(elapsed)} ms`);
    });

    it(
      'an upstream refusing the connection: forward rejects with UPSTREAM_UNREACHABLE, reason ECONNREFUSED (502)',
      BOUNDED,
      async () => {
        const closed = createNetServer();
        const port = await listenOnLoopback(closed);
        await new Promise((resolve) => closed.close(resolve));
        const { status, body, outcome, reason } = await answer(port);
        assert.deepEqual(
          [status, body, outcome, reason],
          [502, UPSTREAM_UNREACHABLE, UPSTREAM_UNREACHABLE, 'ECONNREFUSED'],
        );
      },
    );

    it('an upstream answering garbage: forward rejects with UPSTREAM_FRAMING (502)', BOUNDED, async () => {
      const upstream = await rawUpstream((socket) =>
        socket.once('data', () => socket.write('this is not HTTP\r\n\r\n')),
      );
      const { status, body, outcome } = await answer(upstream.port);
      assert.deepEqual([status, body, outcome], [502, UPSTREAM_FRAMING, UPSTREAM_FRAMING]);
    });
  });

  describe('a kept-alive upstream connection closed by the upstream between requests', () => {
    let lastProxy: Proxy | undefined;
    async function twoGets(
      upstreamPort: number,
      between: () => Promise<unknown> = async () => {},
    ): Promise<Array<Array<string | number>>> {
      lastProxy = await proxyTo(upstreamPort);
      const client = await rawClient(lastProxy.port);
      client.socket.write(get('/1'));
      await client.until(count(1), 'the first response');
      await between();
      client.socket.write(get('/2'));
      return summary(responses(await client.until(count(2), 'the second response')).list);
    }

    it('after its keep-alive timeout: the next GET succeeds on a new connection', BOUNDED, async () => {
      const upstream = await httpUpstream((req, res) => res.end(`ok ${req.url}`), {
        keepAliveTimeout: 50,
        keepAliveTimeoutBuffer: 0,
      });
      const upstreamIdleClosed = async (): Promise<void> => {
        while (upstream.sockets.size > 0) await delay(10);
      };
      assert.deepEqual(
        await twoGets(upstream.port, () =>
          within(delay(200).then(upstreamIdleClosed), 5_000, 'the upstream to close its idle connection'),
        ),
        [
          [200, 'ok /1'],
          [200, 'ok /2'],
        ],
      );
      assert.equal(upstream.connections(), 2);
    });

    it('right after its first response, without Connection: close: the next GET succeeds', BOUNDED, async () => {
      const upstream = await rawUpstream((socket) =>
        socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')),
      );
      assert.deepEqual(await twoGets(upstream.port), [
        [200, 'ok'],
        [200, 'ok'],
      ]);
      assert.equal(upstream.connections(), 2);
    });

    /** An upstream that answers the first request on each connection (`ok <n>`, n counting requests) and closes, unanswered, at the second. */
    async function answersOncePerConnection(): Promise<Served & { requests(): number }> {
      let requests = 0;
      const upstream = await rawUpstream((socket) => {
        let onThisConnection = 0;
        socket.on('data', () => {
          requests++;
          if (++onThisConnection === 1) socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nok ${requests}`);
          else socket.end();
        });
      });
      return Object.assign(upstream, { requests: () => requests });
    }

    it(
      'as the next bodiless request arrives, unanswered: that request is retried once on a fresh connection',
      BOUNDED,
      async () => {
        const upstream = await answersOncePerConnection();
        // Request 2 reaches the first connection, which closes unanswered; its retry is request 3, on a second connection.
        assert.deepEqual(await twoGets(upstream.port), [
          [200, 'ok 1'],
          [200, 'ok 3'],
        ]);
        assert.equal(upstream.connections(), 2);
        assert.equal(lastProxy?.retries, 1, 'the retry was counted');
      },
    );

    it(
      'as the next request arrives, unanswered, a POST without a body is not sent again (RFC 9110 §9.2.2): 502',
      BOUNDED,
      async () => {
        const upstream = await answersOncePerConnection();
        const proxy = await proxyTo(upstream.port);
        const client = await rawClient(proxy.port);
        client.socket.write(get('/1'));
        await client.until(count(1), 'the first response');
        client.socket.write('POST /2 HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n');
        const statuses = responses(await client.until(count(2), 'the second response')).list.map((r) => r.status);
        assert.deepEqual(statuses, [200, 502]);
        assert.equal(upstream.requests(), 2, 'the POST reached the upstream once');
        assert.equal(proxy.retries, 0);
      },
    );
  });

  describe('requests the server refuses itself (options.refuse)', () => {
    async function refused(bytes: string, options: ProxyOptions = {}) {
      const proxy = await proxyTo((await httpUpstream((_req, res) => res.end('never'))).port, options);
      const client = await rawClient(proxy.port);
      client.socket.write(bytes);
      const { list } = responses(await client.whenClosed(), { closed: true });
      return {
        statuses: list.map((r) => r.status),
        refusals: proxy.refusals.map((r) => r.status),
        handled: proxy.streams.length,
      };
    }

    it('a head over maxHeadBytes: 431', BOUNDED, async () => {
      const result = await refused(`GET / HTTP/1.1\r\nHost: test\r\nX-Big: ${'a'.repeat(2_000)}\r\n\r\n`, {
        maxHeadBytes: 1_024,
      });
      assert.deepEqual(result, { statuses: [431], refusals: [431], handled: 0 });
    });

    it('Content-Length together with Transfer-Encoding: 400', BOUNDED, async () => {
      const result = await refused(
        'POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      );
      assert.deepEqual(result, { statuses: [400], refusals: [400], handled: 0 });
    });

    it('a head trickled in slower than headersTimeoutMs: 408', BOUNDED, async () => {
      const proxy = await proxyTo((await httpUpstream((_req, res) => res.end('never'))).port, {
        headersTimeoutMs: 300,
        keepAliveTimeoutMs: 2_000,
      });
      const client = await rawClient(proxy.port);
      const started = performance.now();
      client.socket.write('GET / HTTP/1.1\r\nHost: test\r\nX-Slow: ');
      // One byte every 50 ms: never idle for keepAliveTimeoutMs, never a whole head within headersTimeoutMs.
      const trickle = setInterval(() => client.socket.write('a'), 50);
      try {
        const { list } = responses(await client.whenClosed(4_000), { closed: true });
        const elapsed = performance.now() - started;
        assert.deepEqual(
          [list.map((r) => r.status), proxy.refusals.map((r) => [r.status, r.code, r.reason])],
          [[408], [[408, 'BATON_REQUEST_TIMEOUT', 'head']]],
        );
        assert.ok(elapsed >= 250 && elapsed < 3_000, `refused after ${Math.round(elapsed)} ms`);
      } finally {
        clearInterval(trickle);
      }
    });

    it('an idle connection is closed after keepAliveTimeoutMs, without a response', BOUNDED, async () => {
      const proxy = await proxyTo((await httpUpstream((_req, res) => res.end('ok'))).port, { keepAliveTimeoutMs: 300 });
      const client = await rawClient(proxy.port);
      client.socket.write(get('/'));
      await client.until(count(1), 'the response');
      const idleSince = performance.now();
      const { list, rest } = responses(await client.whenClosed(5_000));
      const idle = performance.now() - idleSince;
      assert.deepEqual([summary(list), rest.length, proxy.refusals], [[[200, 'ok']], 0, []]);
      assert.ok(idle >= 250 && idle < 4_000, `closed after ${Math.round(idle)} ms idle`);
    });
  });

  it('a handler that throws ends its own connection, and the server goes on serving others', BOUNDED, async () => {
    const upstream = await httpUpstream((_req, res) => res.end('ok'));
    let calls = 0;
    const proxy = await proxyTo(upstream.port, {
      handle: (x, forward) => {
        if (++calls === 1) throw new Error('a handler bug');
        return forward(x);
      },
    });
    const first = await rawClient(proxy.port);
    first.socket.write(get('/'));
    assert.equal((await first.whenClosed()).length, 0, 'the first connection closed without an answer');
    const second = await rawClient(proxy.port);
    second.socket.write(get('/'));
    const [answer] = responses(
      await second.until((b) => responses(b).list.length === 1, 'an answer on a new connection'),
    ).list;
    assert.equal(answer?.status, 200);
  });

  it('while draining, a response carries connection: close and the connection closes after it', BOUNDED, async () => {
    let answerDuring: (() => void) | undefined;
    const upstream = await httpUpstream((req, res) => {
      if (req.url === '/during') answerDuring = () => res.end(`ok ${req.url}`);
      else res.end(`ok ${req.url}`);
    });
    const proxy = await proxyTo(upstream.port);
    const client = await rawClient(proxy.port);
    client.socket.write(get('/before'));
    await client.until(count(1), 'the first response');
    client.socket.write(get('/during'));
    // The request is in hand when shutdown begins: it is answered, with connection: close.
    await waitFor(async () => answerDuring !== undefined, { what: '/during at the upstream' });
    proxy.drain();
    answerDuring?.();
    const { list, rest } = responses(await client.whenClosed(), { closed: true });
    assert.deepEqual(
      list.map((r) => [r.status, r.headers.connection, r.body.toString()]),
      [
        [200, undefined, 'ok /before'],
        [200, 'close', 'ok /during'],
      ],
    );
    assert.equal(rest.length, 0);
  });
});
