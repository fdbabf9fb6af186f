/**
 * HTTP/2 limits and the attacks named after them (#27), against a data-plane
 * listener with HTTP/2 on (src/dataplane/h2-listener.ts): each attack ends
 * the attacker's session (or its streams) within bounds, the handler sees
 * at most what the limits admit, and the listener goes on serving others.
 * Frames the node client never sends come from test/helpers/h2-frames.ts.
 */
import assert from 'node:assert/strict';
import { connect as h2connect, constants, type ClientHttp2Session } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import type { H2Limits } from '../../src/dataplane/h2-listener.ts';
import { createHttp1Server, type Http1Server } from '../../src/dataplane/server.ts';
import type { RequestStream } from '../../src/dataplane/stream.ts';
import { BOUNDED, cleanUp, cleanUpAfterEach, planeOptions } from '../helpers/dataplane.ts';
import { EMPTY_SETTINGS, Flag, frame, FrameType, headerBlock, PREFACE } from '../helpers/h2-frames.ts';
import { listenOnLoopback, waitFor } from '../helpers/net.ts';

cleanUpAfterEach();

const LIMITS: H2Limits = {
  maxConcurrentStreams: 10,
  maxHeaderListSize: 8_192,
  idleTimeoutMs: 5_000,
  resetBurst: 20,
  resetRate: 5,
  maxSessionMemoryMb: 10,
};

/** A listener whose handler answers 200 at once, or never (`hold`), counting what it was handed. */
async function listener(
  hold = false,
): Promise<{ port: number; handled: () => number; open: () => number; plane: Http1Server }> {
  let handled = 0;
  let open = 0;
  const handler = (stream: RequestStream): void => {
    handled++;
    open++;
    stream.onClose(() => open--);
    // Held streams never answer, except the well-behaved client's after the attack.
    if (!hold || stream.url === '/after') stream.respond(200, ['content-type', 'text/plain'], 'ok');
  };
  const plane = createHttp1Server(
    handler,
    planeOptions({ maxConnections: 1_000, maxConnectionsPerPeer: 1_000, h2: LIMITS }),
  );
  const port = await listenOnLoopback(plane.server);
  cleanUp(() => plane.server.close());
  cleanUp(() => plane.closeAll());
  return { port, handled: () => handled, open: () => open, plane };
}

/** A raw connection that has sent the preface and an empty SETTINGS; resolves when the server's end closes it (or after `ms`). */
async function rawH2(port: number): Promise<{ socket: Socket; closed: Promise<boolean>; received: () => Buffer }> {
  const socket = connect(port, '127.0.0.1');
  cleanUp(() => socket.destroy());
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', () => {});
  const closed = new Promise<boolean>((resolve) => {
    socket.once('close', () => resolve(true));
    setTimeout(() => resolve(false), 10_000).unref();
  });
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write(Buffer.concat([PREFACE, EMPTY_SETTINGS]));
  return { socket, closed, received: () => Buffer.concat(chunks) };
}

const requestBlock = (path = '/'): Buffer =>
  headerBlock([
    [':method', 'GET'],
    [':scheme', 'http'],
    [':authority', 'orders'],
    [':path', path],
  ]);

/** Whether `bytes` hold a GOAWAY frame (type 7) from the server. */
function hasGoaway(bytes: Buffer): boolean {
  for (let at = 0; at + 9 <= bytes.length;) {
    const length = bytes.readUIntBE(at, 3);
    if (bytes[at + 3] === FrameType.GOAWAY) return true;
    at += 9 + length;
  }
  return false;
}

/** A well-behaved client's request on a fresh session: the listener still serves. */
async function stillServes(port: number): Promise<void> {
  const session: ClientHttp2Session = h2connect(`http://127.0.0.1:${port}`);
  cleanUp(() => session.destroy());
  const status = await new Promise<number>((resolve, reject) => {
    const req = session.request({ ':path': '/after' });
    req.on('response', (headers) => resolve(Number(headers[':status'])));
    req.on('error', reject);
    req.end();
  });
  assert.equal(status, 200);
}

describe('HTTP/2 limits and attacks', () => {
  it(
    'rapid reset (CVE-2023-44487): streams opened and reset past the burst end the session; the handler saw at most the burst',
    BOUNDED,
    async () => {
      const server = await listener(true);
      const { socket, closed, received } = await rawH2(server.port);
      const frames: Buffer[] = [];
      for (let id = 1; id < 2_000; id += 2) {
        frames.push(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, id, requestBlock()));
        frames.push(frame(FrameType.RST_STREAM, 0, id, Buffer.from([0, 0, 0, constants.NGHTTP2_CANCEL])));
      }
      socket.write(Buffer.concat(frames));
      assert.equal(await closed, true, 'the session was ended');
      assert.ok(hasGoaway(received()), 'with a GOAWAY');
      assert.ok(
        server.handled() <= LIMITS.maxConcurrentStreams,
        `the handler saw ${server.handled()} of 1,000 reset streams`,
      );
      await stillServes(server.port);
    },
  );

  it('CONTINUATION flood (CVE-2024-27316): an endless header block is cut, never buffered', BOUNDED, async () => {
    const server = await listener();
    const { socket, closed } = await rawH2(server.port);
    const junk = headerBlock([['x-junk', 'a'.repeat(100)]]);
    socket.write(frame(FrameType.HEADERS, 0, 1, requestBlock()));
    let sent = 0;
    // Up to 16 MB of CONTINUATION frames that never end the block; the server must close long before.
    for (let i = 0; i < 150_000 && !socket.destroyed; i++) {
      if (!socket.write(frame(FrameType.CONTINUATION, 0, 1, junk)))
        await new Promise((resolve) => socket.once('drain', resolve).once('close', resolve));
      sent += junk.length + 9;
    }
    assert.equal(await closed, true, `the session was ended (${sent} bytes sent)`);
    assert.equal(server.handled(), 0, 'no stream reached the handler');
    await stillServes(server.port);
  });

  it('a SETTINGS flood and a PING flood end the session', BOUNDED, async () => {
    const server = await listener();
    const settings = await rawH2(server.port);
    settings.socket.write(
      Buffer.concat(
        Array.from({ length: 10_000 }, () => frame(FrameType.SETTINGS, 0, 0, Buffer.from([0, 3, 0, 0, 0, 100]))),
      ),
    );
    assert.equal(await settings.closed, true, 'SETTINGS flood: session ended');
    const pings = await rawH2(server.port);
    // Never reading the PING ACKs: the server's queue of answers is what the flood fills.
    pings.socket.pause();
    pings.socket.write(
      Buffer.concat(Array.from({ length: 50_000 }, (_, i) => frame(FrameType.PING, 0, 0, Buffer.alloc(8, i % 256)))),
    );
    pings.socket.resume();
    assert.equal(await pings.closed, true, 'PING flood: session ended');
    await stillServes(server.port);
  });

  it('holds one session to maxConcurrentStreams: the handler never has more open at once', BOUNDED, async () => {
    const server = await listener(true);
    const { socket, received } = await rawH2(server.port);
    const frames: Buffer[] = [];
    for (let id = 1; id < 60; id += 2)
      frames.push(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, id, requestBlock()));
    socket.write(Buffer.concat(frames));
    await waitFor(async () => server.handled() >= LIMITS.maxConcurrentStreams, { what: 'the admitted streams' });
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(server.open(), LIMITS.maxConcurrentStreams, `open streams at the handler: ${server.open()}`);
    // The streams past the limit were refused (RST_STREAM REFUSED_STREAM, RFC 9113 §5.1.2).
    let refused = 0;
    const bytes = received();
    for (let at = 0; at + 9 <= bytes.length;) {
      const length = bytes.readUIntBE(at, 3);
      if (bytes[at + 3] === FrameType.RST_STREAM && bytes.readUInt32BE(at + 9) === constants.NGHTTP2_REFUSED_STREAM)
        refused++;
      at += 9 + length;
    }
    assert.ok(refused > 0, 'streams past the limit were refused');
  });

  it('refuses a header list over maxHeaderListSize without handing it on', BOUNDED, async () => {
    const server = await listener();
    const session = h2connect(`http://127.0.0.1:${server.port}`);
    cleanUp(() => session.destroy());
    const outcome = await new Promise<string>((resolve) => {
      const req = session.request({ ':path': '/', 'x-big': 'b'.repeat(20_000) });
      req.on('response', (headers) => resolve(`status ${String(headers[':status'])}`));
      req.on('error', (error: Error & { code?: string }) => resolve(error.code ?? 'error'));
      req.on('close', () => resolve(`closed ${req.rstCode}`));
      req.end();
    });
    assert.doesNotMatch(outcome, /^status 200/);
    assert.equal(server.handled(), 0);
    assert.match(outcome, /^status 431/);
    await stillServes(server.port);
  });

  it('closes an idle session after the idle timeout', BOUNDED, async () => {
    const plane = createHttp1Server(() => {}, planeOptions({ h2: { ...LIMITS, idleTimeoutMs: 200 } }));
    const port = await listenOnLoopback(plane.server);
    cleanUp(() => plane.server.close());
    const { closed } = await rawH2(port);
    assert.equal(await closed, true);
  });
});
