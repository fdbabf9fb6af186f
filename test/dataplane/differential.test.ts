/**
 * Differential test of the data plane's HTTP/1.1 parser (src/dataplane/http1-parser.ts)
 * against node:http's: the same raw request bytes go to a real node:http
 * server on loopback (its defaults: llhttp, strict) and to the parser.
 * For every input the parser must either frame exactly the messages node
 * framed (method, target, header fields in order, body bytes), or refuse.
 * It may refuse what node accepts (baton is stricter on purpose); it may
 * never accept what node refuses, nor frame a message node framed otherwise:
 * that difference is what request smuggling is made of.
 *
 * The corpus is fixed: the classic smuggling shapes written out below, and
 * mutations of them drawn by fast-check from a fixed seed, so a failure
 * reproduces on every machine.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { Http1Parser, HttpFramingError } from '../../src/dataplane/http1-parser.ts';
import { listenOnLoopback } from '../helpers/net.ts';

interface Framed {
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: readonly string[];
  readonly body: string;
}

/** What node:http framed from `bytes`: the messages whose bodies it read to the end, then whether it refused the rest. */
interface NodeView {
  readonly messages: Framed[];
  readonly refused: boolean;
}

let server: Server;
let port: number;
const byConnection = new Map<string, Framed[]>();

function nodeFrames(bytes: Buffer): Promise<NodeView> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    const timer = setTimeout(() => socket.destroy(), 2_000);
    socket.on('connect', () => {
      const key = `${socket.localPort}`;
      byConnection.set(key, []);
      socket.end(bytes);
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
      socket.on('close', () => {
        clearTimeout(timer);
        // Give the server's last 'end' events a turn; the socket closed only after node wrote every answer.
        setImmediate(() => {
          const messages = byConnection.get(key) ?? [];
          byConnection.delete(key);
          resolve({ messages, refused: /HTTP\/1\.1 400 /.test(answer) });
        });
      });
    });
    socket.on('error', reject);
  });
}

function parserFrames(bytes: Buffer): { messages: Framed[]; refused: boolean } {
  const messages: Framed[] = [];
  let head: { method: string; url: string; rawHeaders: readonly string[] } | undefined;
  let body: Buffer[] = [];
  const parser = new Http1Parser(
    'request',
    {
      onHead: (h) => {
        head = { method: h.method, url: h.url, rawHeaders: h.rawHeaders };
        body = [];
      },
      onBody: (chunk) => body.push(Buffer.from(chunk)),
      onMessageComplete: () => {
        if (head !== undefined) messages.push({ ...head, body: Buffer.concat(body).toString('latin1') });
        head = undefined;
      },
    },
    { maxHeadBytes: 16 * 1024 },
  );
  try {
    let rest = bytes;
    while (rest.length > 0) rest = rest.subarray(parser.execute(rest).consumed);
    // The client half-closed after its bytes, as the test's socket does: a message cut short is refused here.
    parser.finish();
    return { messages, refused: false };
  } catch (error) {
    if (!(error instanceof HttpFramingError)) throw error;
    return { messages, refused: true };
  } finally {
    parser.close();
  }
}

async function compare(bytes: Buffer): Promise<void> {
  const ours = parserFrames(bytes);
  const theirs = await nodeFrames(bytes);
  const shown = JSON.stringify(bytes.toString('latin1'));
  // Every message the parser framed, node framed the same way, in the same order.
  assert.ok(
    ours.messages.length <= theirs.messages.length,
    `the parser framed more messages than node:http (${ours.messages.length} > ${theirs.messages.length}) from ${shown}`,
  );
  ours.messages.forEach((message, index) =>
    assert.deepEqual(message, theirs.messages[index], `message ${index} framed differently from ${shown}`),
  );
  // Fewer messages only by refusing: never by reading a body or a pipeline differently and moving on.
  if (ours.messages.length < theirs.messages.length)
    assert.ok(ours.refused, `the parser framed fewer messages than node:http without refusing, from ${shown}`);
  // What node refuses, the parser refuses too, at the same message or earlier.
  if (theirs.refused) assert.ok(ours.refused, `node:http refused what the parser accepted: ${shown}`);
}

const CRLF = '\r\n';
const req = (lines: string[], body = ''): string => lines.join(CRLF) + CRLF + CRLF + body;
const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n';

/** Framing cases: each is sent alone and, where it is a whole message, followed by a pipelined GET. */
const CORPUS: readonly string[] = [
  req(['GET / HTTP/1.1', 'Host: a']),
  req(['GET /a?b=c HTTP/1.1', 'Host: a', 'Accept: */*', 'X-Empty:']),
  req(['POST /p HTTP/1.1', 'Host: a', 'Content-Length: 5'], 'hello'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Content-Length: 0']),
  req(['POST /p HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], '5\r\nhello\r\n0\r\n\r\n'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], '5;ext=1\r\nhello\r\n0\r\nTrailer: t\r\n\r\n'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], 'A\r\n0123456789\r\n0\r\n\r\n'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Transfer-Encoding: CHUNKED'], '1\r\nx\r\n0\r\n\r\n'),
  req(['PUT /p HTTP/1.0', 'Host: a', 'Content-Length: 2'], 'hi'),
  req(['OPTIONS * HTTP/1.1', 'Host: a']),
  req(['GET http://a/abs HTTP/1.1', 'Host: a']),
  req(['POST /p HTTP/1.1', 'Host: a', 'Expect: 100-continue', 'Content-Length: 3'], 'abc'),
  // CL.TE, TE.CL, TE.TE
  req(['POST /p HTTP/1.1', 'Host: a', 'Content-Length: 6', 'Transfer-Encoding: chunked'], '0\r\n\r\nG'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked', 'Content-Length: 3'], '8\r\nSMUGGLED\r\n0\r\n\r\n'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked', 'Transfer-Encoding: identity'], '0\r\n\r\n'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Transfer-Encoding: xchunked'], '0\r\n\r\n'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Transfer-Encoding : chunked'], '0\r\n\r\n'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Transfer-Encoding:\tchunked'], '0\r\n\r\n'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked, identity'], '0\r\n\r\n'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Transfer-Encoding: identity, chunked'], '0\r\n\r\n'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Transfer-Encoding: gzip'], 'abc'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked', ' identity'], '0\r\n\r\n'),
  // Content-Length shapes
  req(['POST /p HTTP/1.1', 'Host: a', 'Content-Length: 3', 'Content-Length: 3'], 'abc'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Content-Length: 3, 3'], 'abc'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Content-Length: +3'], 'abc'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Content-Length: -1'], 'abc'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Content-Length: 0x3'], 'abc'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Content-Length:  3 '], 'abc'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Content-Length : 3'], 'abc'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Content-Length: 99999999999999999999'], 'abc'),
  // chunk sizes and chunk framing
  req(['POST /p HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], '0x5\r\nhello\r\n0\r\n\r\n'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], '-1\r\nx\r\n0\r\n\r\n'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], 'FFFFFFFFFFFFFFFFF\r\nx\r\n0\r\n\r\n'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], '5 \r\nhello\r\n0\r\n\r\n'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], '5\r\nhelloX\r\n0\r\n\r\n'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], '5\nhello\n0\n\n'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], '5\r\nhello\r\n0\r\n'),
  req(['POST /p HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], 'g\r\nx\r\n0\r\n\r\n'),
  // line endings, obs-fold, odd bytes in the head
  'GET / HTTP/1.1\nHost: a\n\n',
  'GET / HTTP/1.1\r\nHost: a\n\r\n',
  'GET / HTTP/1.1\rHost: a\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n',
  req(['GET / HTTP/1.1', 'Host: a', 'X-Folded: a', ' b']),
  req(['GET / HTTP/1.1', 'Host: a', 'X-Folded: a', '\tb']),
  req(['GET / HTTP/1.1', 'Host: a', 'X-Nul: a\u0000b']),
  req(['GET / HTTP/1.1', 'Host: a', 'X Space: a']),
  req(['GET / HTTP/1.1', 'Host: a', ': empty-name']),
  req(['GET / HTTP/1.1', 'Host: a', 'X-Del: a\u007fb']),
  req(['GET / HTTP/1.1', 'Host: a', 'X-Latin: caf\u00e9']),
  req(['GET /a b HTTP/1.1', 'Host: a']),
  req(['GET /a\tb HTTP/1.1', 'Host: a']),
  req(['get / HTTP/1.1', 'Host: a']),
  req(['GET / HTTP/1.2', 'Host: a']),
  req(['GET / HTTP/2.0', 'Host: a']),
  req(['GET /  HTTP/1.1', 'Host: a']),
  req(['GET / HTTP/1.1 ', 'Host: a']),
  req([' GET / HTTP/1.1', 'Host: a']),
  req(['GET / HTTP/1.1']),
  req(['GET / HTTP/1.1', 'Host: a', 'Host: b']),
  req(['GET / HTTP/1.1', 'Host: a', 'Connection: close']),
  req(['GET / HTTP/1.1', 'Host: a', 'Connection: upgrade', 'Upgrade: websocket']),
  req(['CONNECT a:443 HTTP/1.1', 'Host: a:443']),
  // a message cut short
  req(['POST /p HTTP/1.1', 'Host: a', 'Content-Length: 10'], 'short'),
  'GET / HTTP/1.1\r\nHost: a\r\n',
];

describe('the data-plane HTTP/1.1 parser against node:http, byte for byte', { timeout: 120_000 }, () => {
  before(async () => {
    const record = (req: IncomingMessage, res: ServerResponse): void => {
      const key = `${req.socket.remotePort}`;
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        byConnection.get(key)?.push({
          method: req.method ?? '',
          url: req.url ?? '',
          rawHeaders: [...req.rawHeaders],
          body: Buffer.concat(chunks).toString('latin1'),
        });
        res.writeHead(200, { 'content-length': '0' }).end();
      });
    };
    server = createServer(record);
    // An Expect other than 100-continue is framed like any request; only node's automatic 417 is turned off.
    server.on('checkExpectation', record);
    port = await listenOnLoopback(server);
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('frames every corpus case as node:http does, or refuses it', async () => {
    for (const text of CORPUS) {
      const bytes = Buffer.from(text, 'latin1');
      await compare(bytes);
      // The same case with a request pipelined behind it: where the first message ends must agree too.
      await compare(Buffer.concat([bytes, Buffer.from(SMUGGLED, 'latin1')]));
    }
  });

  it('refuses every classic smuggling shape outright, whatever node:http does with it', () => {
    const mustRefuse = CORPUS.filter((text) =>
      /Content-Length: 6\r\nTransfer-Encoding|Transfer-Encoding: chunked\r\nContent-Length|Content-Length: 3\r\nContent-Length: 3|Transfer-Encoding: xchunked|Transfer-Encoding : chunked|X-Folded|\nHost: a\n|Host: a\r\nHost: b|0x5\r\n/.test(
        text,
      ),
    );
    assert.ok(mustRefuse.length >= 9, 'the selection still finds the smuggling cases');
    for (const text of mustRefuse)
      assert.equal(parserFrames(Buffer.from(text + SMUGGLED, 'latin1')).refused, true, JSON.stringify(text));
  });

  it('agrees on seeded mutations of the corpus (fixed seed, bounded runs)', async () => {
    // A mutation: a byte of the corpus case replaced, removed or duplicated, or CR/LF/SP/TAB/NUL/':' inserted.
    const special = fc.constantFrom(0x0d, 0x0a, 0x20, 0x09, 0x00, 0x3a, 0x30, 0x2c);
    const mutation = fc.record({
      kind: fc.constantFrom('replace', 'insert', 'delete', 'duplicate'),
      at: fc.nat(),
      byte: fc.oneof(special, fc.integer({ min: 0, max: 255 })),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: CORPUS.length - 1 }),
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        async (index, mutations) => {
          const bytes = [...Buffer.from((CORPUS[index] as string) + SMUGGLED, 'latin1')];
          for (const { kind, at, byte } of mutations) {
            const i = at % bytes.length;
            if (kind === 'replace') bytes[i] = byte;
            else if (kind === 'insert') bytes.splice(i, 0, byte);
            else if (kind === 'delete') bytes.splice(i, 1);
            else bytes.splice(i, 0, bytes[i] as number);
          }
          await compare(Buffer.from(bytes));
        },
      ),
      { seed: 19_2026, numRuns: 2000, endOnFailure: true },
    );
  });

  it('frames responses for passing through: the message end found in a stream cut anywhere', () => {
    const stream = Buffer.from(
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi',
      'latin1',
    );
    // Each message ends where the next status line starts, and the last at the end of the stream.
    const starts: number[] = [];
    for (let at = stream.indexOf('HTTP/1.1 ', 1); at !== -1; at = stream.indexOf('HTTP/1.1 ', at + 1)) starts.push(at);
    const expected = [...starts, stream.length];
    assert.equal(expected.length, 4);
    for (let cut = 1; cut < stream.length; cut++) {
      const ends: number[] = [];
      let offset = 0;
      const parser = new Http1Parser(
        'response',
        { onHead: () => undefined, onMessageComplete: () => undefined },
        { maxHeadBytes: 8192 },
      );
      for (const piece of [stream.subarray(0, cut), stream.subarray(cut)]) {
        let rest = piece;
        while (rest.length > 0) {
          const { consumed, stoppedAt } = parser.execute(rest);
          offset += consumed;
          if (stoppedAt === 'message') ends.push(offset);
          rest = rest.subarray(consumed);
        }
      }
      parser.close();
      assert.deepEqual(ends, expected, `cut at ${cut}`);
    }
  });
});
