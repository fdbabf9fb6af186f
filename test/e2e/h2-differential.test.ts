/**
 * The hop-level differential harness's HTTP/2 leg (#27, "where it
 * applies"): the same HTTP/2 request, built frame by frame so that
 * malformed ones can be sent at all, goes (a) straight to a real node:http2
 * origin, (b) through the real sidecar pair (A's outbound port, h2c), and
 * (c) to B's inbound port alone. The origin must read the same request —
 * method, path, fields, body — or baton must refuse it and the origin read
 * nothing of it. baton never turns HTTP/2 into HTTP/1.1 (a request keeps its
 * protocol on every hop), so the downgrade class of HTTP/2 smuggling does
 * not arise; what remains is what one HTTP/2 hop could read otherwise than
 * the next: forbidden fields (RFC 9113 §8.2.2), pseudo-field abuse
 * (§8.3), length and body disagreements (§8.1.1), Host against
 * :authority, bytes a field value may not hold, and two users' streams on
 * one connection.
 *
 * Normalization, as the HTTP/1.1 harness's: `:authority` is the next hop's
 * own, `baton-*`, Authorization, Forwarded, X-Forwarded-*, X-Real-IP and
 * X-Request-Id are the sidecar's to write, and baton's own `baton-subject`
 * must name the stream's user.
 */
import assert from 'node:assert/strict';
import { createServer, type Http2Server, type IncomingHttpHeaders } from 'node:http2';
import { connect, type Server as NetServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { EMPTY_SETTINGS, Flag, frame, FrameType, headerBlock, PREFACE } from '../helpers/h2-frames.ts';
import { listenOnLoopback } from '../helpers/net.ts';
import { type HopMesh, startHopMesh, type User } from '../dataplane/hop/mesh.ts';

interface Read {
  readonly method: string;
  readonly path: string;
  /** Compared as framing, not as a field in its place (the forwarder writes it after the others, as on HTTP/1.1). */
  readonly contentLength: string | undefined;
  readonly fields: ReadonlyArray<readonly [string, string]>;
  readonly body: string;
  readonly subject: string | undefined;
}

interface Case {
  readonly id: string;
  readonly source: string;
  /** Regular fields (pseudo-fields are added: :method, :scheme, :authority, :path unless `pseudo` replaces them). */
  readonly fields: ReadonlyArray<readonly [string, string]>;
  readonly pseudo?: ReadonlyArray<readonly [string, string]>;
  readonly method?: string;
  readonly path?: string;
  readonly data?: string;
  /** baton must refuse it (whatever the origin would do). */
  readonly refused?: true;
  /** A malformed field nghttp2 drops on every hop (RFC 9113 §8.2.1): read the same, and this field never arrives. */
  readonly dropped?: string;
}

const CASES: readonly Case[] = [
  { id: 'get', source: 'RFC 9113 §8.3.1', fields: [['accept', '*/*']] },
  {
    id: 'post-length',
    source: 'RFC 9113 §8.1.1',
    method: 'POST',
    fields: [
      ['content-length', '11'],
      ['content-type', 'text/plain'],
    ],
    data: 'hello world',
  },
  {
    id: 'post-no-length',
    source: 'RFC 9113 §8.1',
    method: 'POST',
    fields: [['content-type', 'text/plain']],
    data: 'streamed',
  },
  {
    id: 'length-mismatch',
    source: 'RFC 9113 §8.1.1 (content-length not the DATA length: malformed)',
    method: 'POST',
    fields: [['content-length', '3']],
    data: 'longer than three',
    refused: true,
  },
  {
    id: 'transfer-encoding',
    source: 'RFC 9113 §8.2.2 (connection-specific field)',
    method: 'POST',
    fields: [['transfer-encoding', 'chunked']],
    data: '5\r\nhello\r\n0\r\n\r\n',
    refused: true,
  },
  { id: 'connection', source: 'RFC 9113 §8.2.2', fields: [['connection', 'keep-alive']], refused: true },
  { id: 'keep-alive', source: 'RFC 9113 §8.2.2', fields: [['keep-alive', 'timeout=5']], refused: true },
  { id: 'upgrade', source: 'RFC 9113 §8.2.2', fields: [['upgrade', 'websocket']], refused: true },
  { id: 'te-gzip', source: 'RFC 9113 §8.2.2 (te other than trailers)', fields: [['te', 'gzip']], refused: true },
  { id: 'uppercase-name', source: 'RFC 9113 §8.2.1', fields: [['X-Upper', 'a']], refused: true },
  {
    id: 'crlf-in-value',
    source: 'RFC 9113 §8.2.1 (CR, LF or NUL in a value: malformed; the h2→h1 header-injection class)',
    fields: [['x-inject', 'a\r\nbaton-subject: root']],
    dropped: 'x-inject',
  },
  { id: 'nul-in-value', source: 'RFC 9113 §8.2.1', fields: [['x-nul', 'a\u0000b']], dropped: 'x-nul' },
  {
    id: 'host-mismatch',
    source: 'RFC 9113 §8.3.1 (Host naming another authority than :authority)',
    fields: [['host', 'elsewhere.example']],
    refused: true,
  },
  {
    id: 'pseudo-after-regular',
    source: 'RFC 9113 §8.3',
    pseudo: [
      [':method', 'GET'],
      [':scheme', 'http'],
      ['accept', '*/*'],
      [':path', '/late'],
    ],
    fields: [],
    refused: true,
  },
  {
    id: 'duplicate-path',
    source: 'RFC 9113 §8.3.1',
    pseudo: [
      [':method', 'GET'],
      [':scheme', 'http'],
      [':path', '/a'],
      [':path', '/b'],
    ],
    fields: [],
    refused: true,
  },
  {
    id: 'no-path',
    source: 'RFC 9113 §8.3.1',
    pseudo: [
      [':method', 'GET'],
      [':scheme', 'http'],
    ],
    fields: [],
    refused: true,
  },
  {
    id: 'spoofed-baton',
    source: 'baton docs: only the sidecar speaks in baton-*',
    fields: [
      ['baton-subject', 'root'],
      ['baton_chain', 'admin'],
    ],
  },
  { id: 'nbsp-value', source: 'HTTP Garden: Unicode spaces around values', fields: [['x-user', '\u00a0admin\u00a0']] },
  {
    id: 'ambiguous-path',
    source: 'baton docs: an encoded dot segment (docs/policy.md, "Path patterns")',
    path: '/a/%2e%2e/b',
    fields: [],
    refused: true,
  },
  {
    id: 'value-edge-space',
    source: 'RFC 9113 §8.2.1 (a value starting with whitespace)',
    fields: [['x-pad', ' padded']],
    dropped: 'x-pad',
  },
  {
    id: 'grpc-shaped',
    source: 'gRPC over HTTP/2',
    method: 'POST',
    fields: [
      ['content-type', 'application/grpc'],
      ['te', 'trailers'],
    ],
    data: '\u0000\u0000\u0000\u0000\u0000',
  },
];

const NOT_COMPARED = new Set([
  'authorization',
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-real-ip',
  'x-request-id',
  'host',
  'content-length',
]);

/** The h2c origin: records each stream it read whole, answers 200. */
async function h2Origin(): Promise<{ port: number; server: Http2Server; reads: Read[] }> {
  const reads: Read[] = [];
  const server = createServer();
  server.on('stream', (stream, headers: IncomingHttpHeaders, _flags, rawHeaders: string[]) => {
    let body = '';
    stream.setEncoding('latin1');
    stream.on('data', (chunk: string) => (body += chunk));
    stream.on('error', () => {});
    stream.on('end', () => {
      const fields: Array<readonly [string, string]> = [];
      for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
        const name = rawHeaders[i] as string;
        if (name.startsWith(':') || NOT_COMPARED.has(name) || name.startsWith('baton')) continue;
        fields.push([name, rawHeaders[i + 1] as string]);
      }
      reads.push({
        method: String(headers[':method']),
        path: String(headers[':path']),
        contentLength: typeof headers['content-length'] === 'string' ? headers['content-length'] : undefined,
        fields,
        body,
        subject: typeof headers['baton-subject'] === 'string' ? headers['baton-subject'] : undefined,
      });
      stream.respond({ ':status': 200 });
      stream.end('ok');
    });
  });
  const port = await listenOnLoopback(server as unknown as NetServer);
  return { port, server, reads };
}

/** Sends `streams` (each its HEADERS and DATA frames) on one raw h2c connection; resolves with each stream's :status (or undefined) once all answered or the connection ends. */
function sendRaw(
  port: number,
  streams: ReadonlyArray<{ id: number; frames: Buffer[] }>,
  timeoutMs = 3_000,
): Promise<Map<number, number>> {
  return new Promise((resolve) => {
    const socket: Socket = connect(port, '127.0.0.1');
    const statuses = new Map<number, number>();
    let received = Buffer.alloc(0);
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(statuses);
    };
    const timer = setTimeout(done, timeoutMs);
    socket.on('error', done);
    socket.on('close', done);
    socket.on('connect', () =>
      socket.write(
        Buffer.concat([
          PREFACE,
          EMPTY_SETTINGS,
          frame(FrameType.SETTINGS, Flag.ACK, 0),
          ...streams.flatMap((s) => s.frames),
        ]),
      ),
    );
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      for (let at = 0; at + 9 <= received.length;) {
        const length = received.readUIntBE(at, 3);
        if (at + 9 + length > received.length) break;
        const type = received[at + 3];
        const id = received.readUInt32BE(at + 5) & 0x7fffffff;
        // The first byte of an answer's HPACK block: a static-table :status (index 8..14) is enough to tell the status.
        if (type === FrameType.HEADERS && !statuses.has(id))
          statuses.set(id, STATIC_STATUS[(received[at + 9] as number) & 0x7f] ?? 0);
        if (type === FrameType.RST_STREAM && !statuses.has(id)) statuses.set(id, -1);
        if (type === FrameType.GOAWAY) return done();
        at += 9 + length;
      }
      if (streams.every((s) => statuses.has(s.id))) done();
    });
  });
}

// RFC 7541 Appendix A: static-table entries 8–14 are :status 200, 204, 206, 304, 400, 404, 500; anything else reads 0.
const STATIC_STATUS: Readonly<Record<number, number>> = { 8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500 };

function framesOf(c: Case, id: number, authority: string, token: string | undefined): Buffer[] {
  const pseudo = c.pseudo ?? [
    [':method', c.method ?? 'GET'],
    [':scheme', 'http'],
    [':authority', authority],
    [':path', c.path ?? `/case/${c.id}`],
  ];
  const fields = [
    ...pseudo,
    ...c.fields,
    ...(token === undefined ? [] : ([['authorization', `Bearer ${token}`]] as const)),
  ];
  const block = headerBlock(fields);
  if (c.data === undefined) return [frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, id, block)];
  return [
    frame(FrameType.HEADERS, Flag.END_HEADERS, id, block),
    frame(FrameType.DATA, Flag.END_STREAM, id, Buffer.from(c.data, 'latin1')),
  ];
}

describe('the same HTTP/2 request straight to an origin and through a sidecar pair', { timeout: 120_000 }, () => {
  let origin: Awaited<ReturnType<typeof h2Origin>>;
  let mesh: HopMesh;

  before(async () => {
    origin = await h2Origin();
    mesh = await startHopMesh({ h2: origin.port });
  });
  after(async () => {
    await mesh?.stop();
    origin?.server.close();
  });

  /** What the origin read for `c` on one leg: the stream sent alone on its own connection. */
  async function leg(
    c: Case,
    port: number,
    authority: string,
    token: string | undefined,
  ): Promise<{ status: number | undefined; reads: Read[] }> {
    const before = origin.reads.length;
    const statuses = await sendRaw(port, [{ id: 1, frames: framesOf(c, 1, authority, token) }]);
    // The origin's stream 'end' follows its answer's being sent; give it its turn.
    await new Promise((resolve) => setTimeout(resolve, 20));
    return { status: statuses.get(1), reads: origin.reads.slice(before) };
  }

  /** bob's innocent request on each leg after every case: a sidecar that died (or stopped serving) fails here, so no refusal can pass by default. */
  async function canary(c: Case): Promise<void> {
    const probe: Case = { id: `canary-${c.id}`, source: '', fields: [['x-canary', '1']] };
    for (const [name, port, token] of [
      ['pair', mesh.outboundPort, mesh.userToken('bob')],
      ['inbound', mesh.inboundPorts.h2 as number, await mesh.meshToken('bob', 'h2')],
    ] as const) {
      const answer = await leg(probe, port, 'h2', token);
      assert.equal(answer.status, 200, `${name}: bob's canary after ${c.id} was answered`);
      assert.equal(answer.reads.length, 1, `${name}: bob's canary after ${c.id} reached the origin`);
      assert.equal(answer.reads[0]?.subject, 'bob');
    }
  }

  for (const c of CASES) {
    it(`${c.id} (${c.source}): read the same, or refused with nothing upstream`, async () => {
      const straight = await leg(c, origin.port, 'origin', undefined);
      const pair = await leg(c, mesh.outboundPort, 'h2', mesh.userToken('alice'));
      const inbound = await leg(c, mesh.inboundPorts.h2 as number, 'h2', await mesh.meshToken('alice', 'h2'));
      await canary(c);
      for (const [name, through] of [
        ['pair', pair],
        ['inbound', inbound],
      ] as const) {
        if (c.refused === true || through.reads.length === 0) {
          assert.deepEqual(
            through.reads,
            [],
            `${name}: refused, so the origin read nothing (status ${String(through.status)})`,
          );
          assert.ok(
            through.status === undefined || through.status === -1 || through.status === 0 || through.status >= 400,
            `${name}: refused, not answered 2xx (status ${String(through.status)})`,
          );
          continue;
        }
        assert.equal(through.reads.length, 1, `${name}: one request`);
        const [read] = through.reads as [Read];
        const [direct] = straight.reads as [Read];
        assert.ok(direct !== undefined, `straight: the origin read the request (status ${String(straight.status)})`);
        assert.deepEqual(
          {
            method: read.method,
            path: read.path,
            contentLength: read.contentLength,
            fields: read.fields,
            body: read.body,
          },
          {
            method: direct.method,
            path: direct.path,
            contentLength: direct.contentLength,
            fields: direct.fields,
            body: direct.body,
          },
          `${name}: the origin read what it read straight`,
        );
        assert.equal(read.subject, 'alice', `${name}: baton-subject is the stream's user`);
        if (c.dropped !== undefined)
          assert.ok(
            !read.fields.some(([field]) => field === c.dropped),
            `${name}: the malformed ${c.dropped} never reached the origin`,
          );
      }
    });
  }

  it("two users' streams interleaved on one connection each reach the origin as their own user", async () => {
    const before = origin.reads.length;
    const users: User[] = ['alice', 'bob', 'alice', 'bob'];
    const streams = users.map((user, i) => ({
      id: 1 + 2 * i,
      frames: framesOf(
        { id: `mixed-${user}-${i}`, source: '', fields: [['x-who', user]] },
        1 + 2 * i,
        'h2',
        mesh.userToken(user),
      ),
    }));
    const statuses = await sendRaw(mesh.outboundPort, streams);
    assert.deepEqual(
      [...statuses.entries()].sort(([a], [b]) => a - b).map(([, status]) => status),
      [200, 200, 200, 200],
      mesh.output().slice(-3000),
    );
    await new Promise((resolve) => setTimeout(resolve, 20));
    const reads = origin.reads.slice(before);
    assert.equal(reads.length, 4);
    for (const read of reads)
      assert.equal(
        read.subject,
        read.fields.find(([name]) => name === 'x-who')?.[1],
        `the stream of ${read.path} reached the origin as its own user`,
      );
  });
});
