/**
 * The data plane as an identity boundary (issue #23): an app believes the
 * `baton-*` headers it reads because it believes the bytes it reads are
 * the request baton checked. Each test sends what an attacker would, to a
 * proxy built from the data plane with the sidecar's own header rules
 * (src/sidecar/headers.ts `forwardRequestHeaders`), and reads what reached
 * a raw upstream byte for byte: either the same one request, framed as the
 * data plane framed it, or a refusal with nothing sent upstream.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { before, describe, it } from 'node:test';
import type { TlsOptions } from 'node:tls';
import { createHttp1Server } from '../../src/dataplane/server.ts';
import { UPSTREAM_FRAMING } from '../../src/dataplane/forward-call.ts';
import { forwardRequestHeaders } from '../../src/sidecar/headers.ts';
import { createDevCa, issueSvid } from '../../src/identity/dev-ca.ts';
import { parseSpiffeId } from '../../src/identity/spiffe-id.ts';
import {
  BOUNDED,
  cleanUp,
  cleanUpAfterEach,
  count,
  get,
  planeOptions,
  proxyTo,
  rawClient,
  rawUpstream,
  responses,
  within,
} from '../helpers/dataplane.ts';
import { listenOnLoopback, waitFor } from '../helpers/net.ts';

cleanUpAfterEach();

/** A raw upstream that records every byte each connection sent it and answers each request it can frame with 200 and its count. */
async function recorder() {
  const connections: Buffer[][] = [];
  const served = await rawUpstream((socket) => {
    const received: Buffer[] = [];
    connections.push(received);
    let answered = 0;
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      const text = Buffer.concat(received).toString('latin1');
      // Enough framing for these tests: one answer per request line seen.
      const lines = text.match(/^[A-Z]+ \S+ HTTP\/1\.[01]\r\n/gm) ?? [];
      while (answered < lines.length) socket.write(`HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n${++answered}`);
    });
    socket.on('error', () => {});
  });
  return {
    ...served,
    bytes: () => connections.map((c) => Buffer.concat(c).toString('latin1')),
    requestLines: () =>
      connections.flatMap(
        (c) =>
          Buffer.concat(c)
            .toString('latin1')
            .match(/^[A-Z]+ \S+ HTTP\/1\.[01]\r\n/gm) ?? [],
      ),
  };
}

/** The tiny proxy with the sidecar's own request header rules: baton-*, Expect and hop-by-hop fields dropped. */
const sidecarLike = (port: number, options: Parameters<typeof proxyTo>[1] = {}) =>
  proxyTo(port, {
    ...options,
    headers: (x) => forwardRequestHeaders(x.head, { dropAuthorization: false, add: ['baton-subject', 'alice'] }),
  });

const SMUGGLED = 'GET /admin HTTP/1.1\r\nHost: app\r\nbaton-subject: root\r\nbaton-chain: gateway\r\n\r\n';

describe('the data plane as an identity boundary', () => {
  describe('a Connection option naming a framing field (issue #23, item 1)', () => {
    for (const [option, framing] of [
      ['Content-Length', `Content-Length: ${SMUGGLED.length}`],
      ['content-length, keep-alive', `Content-Length: ${SMUGGLED.length}`],
      ['Transfer-Encoding', 'Transfer-Encoding: chunked'],
      ['Host', `Content-Length: ${SMUGGLED.length}`],
      ['baton-subject', `Content-Length: ${SMUGGLED.length}`],
    ] as const) {
      it(
        `Connection: ${option} is refused with 400 (reason connection) and not a byte goes upstream`,
        BOUNDED,
        async () => {
          const upstream = await recorder();
          const proxy = await sidecarLike(upstream.port);
          const client = await rawClient(proxy.port);
          const body = framing.startsWith('Transfer')
            ? `${SMUGGLED.length.toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`
            : SMUGGLED;
          client.socket.write(
            `POST /orders HTTP/1.1\r\nHost: orders\r\nConnection: ${option}\r\n${framing}\r\n\r\n${body}`,
          );
          const [answer] = responses(await client.whenClosed()).list;
          assert.equal(answer?.status, 400);
          assert.deepEqual(
            proxy.refusals.map((r) => r.reason),
            ['connection'],
          );
          assert.deepEqual(upstream.bytes(), [], 'nothing reached the upstream');
        },
      );
    }

    it(
      "one user's smuggling attempt never reaches the next user's request on a pooled upstream connection",
      BOUNDED,
      async () => {
        const upstream = await recorder();
        const proxy = await sidecarLike(upstream.port);
        const mallory = await rawClient(proxy.port);
        mallory.socket.write(
          `POST /orders HTTP/1.1\r\nHost: orders\r\nConnection: Content-Length\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
        );
        await mallory.whenClosed();
        const alice = await rawClient(proxy.port);
        alice.socket.write(get('/orders'));
        assert.deepEqual(
          responses(await alice.until(count(1), 'the answer')).list.map((r) => r.status),
          [200],
        );
        assert.deepEqual(
          upstream.requestLines(),
          ['GET /orders HTTP/1.1\r\n'],
          "the upstream read exactly one request: alice's",
        );
        assert.doesNotMatch(upstream.bytes().join(''), /baton-chain|root/);
      },
    );

    it('an app answer whose Connection names Content-Length is a 502, not a hang', BOUNDED, async () => {
      const upstream = await rawUpstream((socket) =>
        socket.once('data', () =>
          socket.write('HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 2\r\n\r\nok'),
        ),
      );
      const proxy = await sidecarLike(upstream.port);
      const client = await rawClient(proxy.port);
      client.socket.write(get('/'));
      const [answer] = responses(await within(client.until(count(1), 'an answer'), 5_000, 'an answer')).list;
      assert.equal(answer?.status, 502);
      assert.equal(await proxy.outcomes[0], UPSTREAM_FRAMING);
    });

    it('an app answer with Transfer-Encoding: gzip, chunked is a 502, never an empty 200', BOUNDED, async () => {
      const upstream = await rawUpstream((socket) =>
        socket.once('data', () =>
          socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n'),
        ),
      );
      const proxy = await sidecarLike(upstream.port);
      const client = await rawClient(proxy.port);
      client.socket.write(get('/'));
      const [answer] = responses(await client.until(count(1), 'an answer')).list;
      assert.equal(answer?.status, 502);
    });
  });

  describe("framing fields are written from the data plane's own framing", () => {
    it(
      'a Content-Length body reaches the app with the one Content-Length the parser read, in canonical form',
      BOUNDED,
      async () => {
        const upstream = await recorder();
        const proxy = await sidecarLike(upstream.port);
        const client = await rawClient(proxy.port);
        client.socket.write('POST /orders HTTP/1.1\r\nHost: orders\r\nContent-Length: 005\r\n\r\nhello');
        await client.until(count(1), 'the answer');
        const [bytes] = upstream.bytes();
        assert.equal(bytes?.match(/^content-length:/gim)?.length, 1);
        assert.match(bytes ?? '', /\r\ncontent-length: 5\r\n\r\nhello$/);
        assert.match(bytes ?? '', /^POST \/orders HTTP\/1\.1\r\nhost: orders\r\n/, 'Host first');
      },
    );

    it('an answer reaches the client framed as the parser read it, whatever fields came with it', BOUNDED, async () => {
      const upstream = await rawUpstream((socket) =>
        socket.once('data', () => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 0002\r\nX-App: 1\r\n\r\nok')),
      );
      const client = await rawClient((await sidecarLike(upstream.port)).port);
      client.socket.write(get('/'));
      const [answer] = responses(await client.until(count(1), 'an answer')).list;
      assert.equal(answer?.headers['content-length'], '2');
      assert.equal(answer?.body.toString(), 'ok');
    });

    it('a chunked answer is framed again: chunk extensions and trailers do not pass', BOUNDED, async () => {
      const upstream = await rawUpstream((socket) =>
        socket.once('data', () =>
          socket.write(
            'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;ext="x"\r\nok\r\n0\r\nX-Trailer: t\r\n\r\n',
          ),
        ),
      );
      const client = await rawClient((await sidecarLike(upstream.port)).port);
      client.socket.write(get('/'));
      const [answer] = responses(await client.until(count(1), 'an answer')).list;
      assert.equal(answer?.framed.toString('latin1'), '2\r\nok\r\n0\r\n\r\n');
    });
  });

  describe('field values are trimmed of SP and HTAB only (issue #23, item 3)', () => {
    for (const [what, field] of [
      ['Transfer-Encoding: chunked\\xa0', 'Transfer-Encoding: chunked\xa0'],
      ['Transfer-Encoding: chunked\\x0b', 'Transfer-Encoding: chunked\x0b'],
      ['Host: orders\\xa0', 'Host: orders\xa0'],
    ] as const) {
      it(`${what} is refused before any byte is written upstream`, BOUNDED, async () => {
        const upstream = await recorder();
        const client = await rawClient((await sidecarLike(upstream.port)).port);
        const host = field.startsWith('Host') ? '' : 'Host: orders\r\n';
        client.socket.write(Buffer.from(`POST / HTTP/1.1\r\n${host}${field}\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 'latin1'));
        const [answer] = responses(await client.whenClosed()).list;
        assert.equal(answer?.status, 400);
        assert.deepEqual(upstream.bytes(), []);
      });
    }
  });

  describe('upgrades and head size (issue #23, item 4)', () => {
    for (const fields of [
      'Connection: Upgrade\r\nUpgrade: websocket',
      'Upgrade: websocket',
      'Connection: upgrade',
      'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA',
    ]) {
      it(
        `an upgrade request (${fields.split('\r\n').join('; ')}) is refused with 501 and never forwarded`,
        BOUNDED,
        async () => {
          const upstream = await recorder();
          const proxy = await sidecarLike(upstream.port);
          const client = await rawClient(proxy.port);
          client.socket.write(`GET /ws HTTP/1.1\r\nHost: orders\r\n${fields}\r\n\r\n`);
          const [answer] = responses(await client.whenClosed()).list;
          assert.equal(answer?.status, 501);
          assert.deepEqual(
            proxy.refusals.map((r) => r.reason),
            ['upgrade'],
          );
          assert.deepEqual(upstream.bytes(), []);
        },
      );
    }

    it(
      'counts every byte of the head: 5,000 tiny fields (25 KB on the wire) are over a 16 KB limit, 431, nothing upstream',
      BOUNDED,
      async () => {
        const upstream = await recorder();
        const proxy = await sidecarLike(upstream.port, { maxHeadBytes: 16_384 });
        const client = await rawClient(proxy.port);
        client.socket.write(`GET / HTTP/1.1\r\nHost: orders\r\n${'a:b\r\n'.repeat(5_000)}\r\n`);
        const [answer] = responses(await client.whenClosed()).list;
        assert.equal(answer?.status, 431);
        assert.deepEqual(upstream.bytes(), []);
      },
    );

    it('a head exactly at the limit passes; one byte more is refused', BOUNDED, async () => {
      const upstream = await recorder();
      const base = 'GET / HTTP/1.1\r\nHost: orders\r\nX-Pad: \r\n\r\n';
      const limit = 1_024;
      const proxy = await sidecarLike(upstream.port, { maxHeadBytes: limit });
      const exact = await rawClient(proxy.port);
      exact.socket.write(base.replace('X-Pad: ', `X-Pad: ${'p'.repeat(limit - base.length)}`));
      assert.deepEqual(
        responses(await exact.until(count(1), 'the answer')).list.map((r) => r.status),
        [200],
      );
      const over = await rawClient(proxy.port);
      over.socket.write(base.replace('X-Pad: ', `X-Pad: ${'p'.repeat(limit - base.length + 1)}`));
      assert.deepEqual(
        responses(await over.whenClosed()).list.map((r) => r.status),
        [431],
      );
    });
  });

  describe('a pooled connection whose framing is in doubt is closed, never reused', () => {
    it(
      'an answer that came before the request body was all sent: the next request gets a new upstream connection',
      BOUNDED,
      async () => {
        const upstream = await rawUpstream((socket) => {
          socket.once('data', () => socket.write('HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n'));
          socket.on('error', () => {});
        });
        const proxy = await sidecarLike(upstream.port);
        const uploader = await rawClient(proxy.port);
        uploader.socket.write('POST /up HTTP/1.1\r\nHost: orders\r\nContent-Length: 100000\r\n\r\nfirst bytes');
        assert.deepEqual(
          responses(await uploader.until(count(1), 'the early answer')).list.map((r) => r.status),
          [413],
        );
        assert.equal(
          responses(await uploader.whenClosed()).list[0]?.headers.connection,
          'close',
          'the client is told the connection closes',
        );
        await waitFor(async () => upstream.sockets.size === 0, { what: 'the doubtful upstream connection to close' });
        const next = await rawClient(proxy.port);
        next.socket.write(get('/next'));
        assert.deepEqual(
          responses(await next.until(count(1), 'the next answer')).list.map((r) => r.status),
          [413],
        );
        assert.equal(upstream.connections(), 2, 'the next request went on a new upstream connection');
      },
    );

    it(
      "bytes after the answer's end: the connection is closed, and the next request opens a new one",
      BOUNDED,
      async () => {
        const upstream = await rawUpstream((socket) =>
          socket.on('data', () =>
            socket.write(
              'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nforge',
            ),
          ),
        );
        const proxy = await sidecarLike(upstream.port);
        const client = await rawClient(proxy.port);
        client.socket.write(get('/a'));
        await client.until(count(1), 'the first answer');
        client.socket.write(get('/b'));
        const { list } = responses(await client.until(count(2), 'the second answer'));
        assert.deepEqual(
          list.map((r) => r.body.toString()),
          ['ok', 'ok'],
          'the forged second answer was never served',
        );
        assert.equal(upstream.connections(), 2);
      },
    );
  });

  describe('listening sockets: no half-open TLS, every socket ended on shutdown (issue #23, item 2)', () => {
    const openFiles = (): number => readdirSync('/proc/self/fd').length;
    let tls: TlsOptions;
    before(async () => {
      const ca = await createDevCa({
        trustDomain: 'baton.test',
        notBefore: new Date(Date.now() - 60_000),
        notAfter: new Date(Date.now() + 3_600_000),
      });
      const svid = await issueSvid(ca, {
        spiffeId: parseSpiffeId('spiffe://baton.test/ns/test/sa/orders').id,
        dnsNames: ['localhost'],
        ipAddresses: ['127.0.0.1'],
        notBefore: new Date(Date.now() - 60_000),
        notAfter: new Date(Date.now() + 3_600_000),
      });
      tls = { cert: svid.certPem, key: svid.keyPem, minVersion: 'TLSv1.3' };
    });

    it('500 bare TCP connects and FINs on the TLS port leave no descriptor behind', { timeout: 60_000 }, async () => {
      const plane = createHttp1Server(
        () => assert.fail('no request was sent'),
        planeOptions({ maxConnections: 10_000, maxConnectionsPerPeer: 10_000 }),
        tls,
      );
      const port = await listenOnLoopback(plane.server);
      cleanUp(() => plane.server.close());
      cleanUp(() => plane.closeAll());
      const before = openFiles();
      for (let i = 0; i < 500; i += 50) await Promise.all(Array.from({ length: 50 }, () => connectAndFin(port)));
      await waitFor(async () => plane.connections() === 0 && openFiles() <= before + 2, {
        timeoutMs: 10_000,
        what: `open files back to ${before} (now ${openFiles()}, ${plane.connections()} tracked)`,
      });
    });

    it(
      'a handshake that never starts ends at handshakeTimeoutMs, and closeAll ends one still handshaking',
      BOUNDED,
      async () => {
        const plane = createHttp1Server(
          () => assert.fail('no request was sent'),
          planeOptions({ handshakeTimeoutMs: 300 }),
          tls,
        );
        const port = await listenOnLoopback(plane.server);
        cleanUp(() => plane.server.close());
        const silent = await rawClient(port);
        await silent.whenClosed(3_000);
        const another = await rawClient(port);
        await waitFor(async () => plane.connections() === 1, { what: 'the handshaking connection to be tracked' });
        plane.closeAll();
        await another.whenClosed(1_000);
      },
    );

    it('caps connections per peer address and per listener, closing the extra ones at accept', BOUNDED, async () => {
      let capped = 0;
      const plane = createHttp1Server(() => {}, planeOptions({ maxConnectionsPerPeer: 3, onCapped: () => capped++ }));
      const port = await listenOnLoopback(plane.server);
      cleanUp(() => plane.server.close());
      cleanUp(() => plane.closeAll());
      const kept = await Promise.all([rawClient(port), rawClient(port), rawClient(port)]);
      const extra = await rawClient(port);
      await extra.whenClosed(2_000);
      assert.equal(capped, 1);
      assert.ok(kept.every((c) => !c.closed));
    });
  });
});

/** A bare TCP connect and FIN, as a TCP health probe or a scanner sends; resolves once the client side has closed. */
function connectAndFin(port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.end());
    socket.on('error', () => {});
    socket.resume();
    // The server answers the FIN (or does not, which is the bug under test): the client side is done either way.
    socket.on('finish', () => resolve());
    socket.on('close', () => resolve());
  });
}
