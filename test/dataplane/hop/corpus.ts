/**
 * The hop harness's fixed corpus. Each case is the bytes one or more client
 * connections send, written as latin1 templates in which AUTH stands for
 * the connection's bearer token and HOST for the target service, and names
 * its source: an RFC section, a PortSwigger technique, an HTTP Garden
 * finding (narfindustries/http-garden, TROPHIES.md, numbered as there), a
 * CVE, or the known bug on main it reproduces (`known`).
 *
 * `expect` is how many final answers a connection waits for when every
 * request in it is read as written; `refuse` is what the contract
 * (docs/sidecar.md, "HTTP on the wire") says baton answers instead, with
 * not a byte sent upstream.
 */
import type { User } from './mesh.ts';

/** Where the bearer token goes; a character no mutation of latin1 bytes can make. */
export const AUTH = '\u{e000}';
/** Where the target service's name goes. */
export const HOST = '\u{e001}';

/** A refusal the contract asks for: the status, and the code where the contract names one. */
export interface Refusal {
  readonly status: number;
  readonly code?: string;
}

export interface ConnectionScript {
  readonly user: User;
  /** Written in order; a number is a pause in milliseconds between writes. */
  readonly writes: ReadonlyArray<string | number>;
  /** Final answers to wait for when every request is read as written. */
  readonly expect: number;
  /** The contract: baton refuses this connection's first request so, and sends nothing upstream. */
  readonly refuse?: Refusal;
  /** Methods of the requests in order, where one is HEAD (its answer has no body). */
  readonly heads?: readonly number[];
  /** Well-formed, from a user who attacks nothing: it must be read straight, never refused (a dirty pooled connection shows here). */
  readonly innocent?: boolean;
}

export interface RequestCase {
  readonly id: string;
  readonly source: string;
  readonly connections: readonly ConnectionScript[];
  /** A known bug on main this case reproduces (the data-plane fix's regression list). */
  readonly known?: string;
}

export interface AnswerCase {
  readonly id: string;
  readonly source: string;
  /** The bytes the app answers with, whatever they are. */
  readonly answer: string;
  /** The app closes the connection after its answer. */
  readonly close?: boolean;
  readonly method?: 'GET' | 'HEAD';
  /** The contract: baton answers 502 rather than pass this answer on. */
  readonly refuse?: Refusal;
  readonly known?: string;
}

const CRLF = '\r\n';
const FRAMING: Refusal = { status: 400, code: 'BATON_REQUEST_FRAMING' };
// Refused with 501 consistently (the issue); the code is the fix's to name.
const UPGRADE: Refusal = { status: 501 };
const TOO_LARGE: Refusal = { status: 431, code: 'BATON_REQUEST_HEAD_TOO_LARGE' };
const BAD_UPSTREAM: Refusal = { status: 502 };

/** A request with Host and Authorization first, then `fields`, then the body. */
export function request(line: string, fields: readonly string[] = [], body = ''): string {
  return [line, `Host: ${HOST}`, `Authorization: Bearer ${AUTH}`, ...fields].join(CRLF) + CRLF + CRLF + body;
}

/** A request whose every line is given: for cases about Host and Authorization themselves. */
export function bare(lines: readonly string[], body = ''): string {
  return lines.join(CRLF) + CRLF + CRLF + body;
}

const chunk = (data: string): string => `${data.length.toString(16)}${CRLF}${data}${CRLF}`;
const LAST = `0${CRLF}${CRLF}`;

// Bodies hold no placeholder: a length or a chunk size is counted on the template.
/** What a smuggler hides in a body: a whole request naming someone else in baton-* headers. */
export const SMUGGLED = bare([
  'GET /smuggled HTTP/1.1',
  'Host: smuggled.example',
  'baton-subject: mallory',
  'baton-caller: admin',
  'baton-chain: admin',
  'baton_subject: mallory',
]);
/** The start of a request, left open so the next request on the connection completes it. */
export const GLUE = [
  'GET /smuggled/glued HTTP/1.1',
  'Host: smuggled.example',
  'baton-subject: mallory',
  'X-Glue: ',
].join(CRLF);

const one = (text: string, extra: Partial<ConnectionScript> = {}): ConnectionScript => ({
  user: 'alice',
  writes: [text],
  expect: 1,
  ...extra,
});
const refused = (text: string, refuse: Refusal = FRAMING): ConnectionScript => one(text, { refuse });
/**
 * A body that turns out malformed after its head: the body streams, so the
 * head may have gone upstream; baton cuts the connection (no contract
 * refusal), and the differential holds the rest.
 */
const cut = (text: string): ConnectionScript => one(text);
const single = (id: string, source: string, script: ConnectionScript, known?: string): RequestCase => ({
  id,
  source,
  connections: [script],
  ...(known === undefined ? {} : { known }),
});

/** The smuggling body as Content-Length framing would carry it. */
const withLength = (fields: readonly string[], body: string): string =>
  request('POST /upload HTTP/1.1', [...fields, `Content-Length: ${body.length}`], body);

export const REQUEST_CASES: readonly RequestCase[] = [
  // --- Well-formed traffic: the pair must change nothing but what the normalization allows.
  single(
    'get',
    'RFC 9112 §3 (request line)',
    one(request('GET /plain?a=b HTTP/1.1', ['Accept: */*', 'User-Agent: hop/1'])),
  ),
  single('post-length', 'RFC 9112 §6.2 (Content-Length)', one(withLength(['Content-Type: text/plain'], 'hello world'))),
  single(
    'post-length-zero',
    'RFC 9112 §6.3 (zero length)',
    one(request('POST /empty HTTP/1.1', ['Content-Length: 0'])),
  ),
  single(
    'post-chunked',
    'RFC 9112 §7.1 (chunked)',
    one(request('POST /chunks HTTP/1.1', ['Transfer-Encoding: chunked'], chunk('hello ') + chunk('world') + LAST)),
  ),
  single(
    'chunk-extensions-trailers',
    'RFC 9112 §7.1.1, §7.1.2 (extensions, trailers)',
    one(
      request(
        'POST /chunks HTTP/1.1',
        ['Transfer-Encoding: chunked', 'Trailer: X-Sum'],
        `5;name=value${CRLF}hello${CRLF}0${CRLF}X-Sum: 5${CRLF}${CRLF}`,
      ),
    ),
  ),
  single(
    'trailer-fields-smuggle',
    'HTTP Garden server bug 39 / CVE-2023-40175 (trailer section holding a request line)',
    one(
      request(
        'POST /chunks HTTP/1.1',
        ['Transfer-Encoding: chunked'],
        `1${CRLF}Z${CRLF}0${CRLF}X:POST /smuggled HTTP/1.1${CRLF}${CRLF}`,
      ),
    ),
  ),
  single(
    'trailer-framing-fields',
    'RFC 9110 §6.5.1 (framing and baton-* fields in trailers are not headers)',
    one(
      request(
        'POST /chunks HTTP/1.1',
        ['Transfer-Encoding: chunked'],
        `1${CRLF}Z${CRLF}0${CRLF}Content-Length: 50${CRLF}baton-subject: mallory${CRLF}${CRLF}`,
      ),
    ),
  ),
  single('large-body', 'RFC 9112 §6.2 (a body larger than one read)', one(withLength([], 'x'.repeat(200_000)))),
  single(
    'pipelined-gets',
    'RFC 9112 §9.3.2 (pipelining)',
    one(request('GET /one HTTP/1.1') + request('GET /two HTTP/1.1') + request('GET /three HTTP/1.1'), { expect: 3 }),
  ),
  single(
    'pipelined-post-then-get',
    'RFC 9112 §9.3.2 (pipelining after a body)',
    one(withLength([], 'abc') + request('GET /after HTTP/1.1'), { expect: 2 }),
  ),
  single(
    'pipelined-chunked-then-get',
    'RFC 9112 §9.3.2, §7.1 (message end after chunks)',
    one(
      request('POST /chunks HTTP/1.1', ['Transfer-Encoding: chunked'], chunk('abc') + LAST) +
        request('GET /after HTTP/1.1'),
      { expect: 2 },
    ),
  ),
  single(
    'http-1-0',
    'RFC 9112 §2.3 (HTTP/1.0 request)',
    one(request('POST /old HTTP/1.0', ['Content-Length: 2'], 'hi')),
  ),
  single('absolute-form', 'RFC 9112 §3.2.2 (absolute-form)', one(request(`GET http://${HOST}/absolute?q=1 HTTP/1.1`))),
  single(
    'absolute-form-other-host',
    "RFC 9112 §3.2.2 (the target's authority wins over Host)",
    one(bare([`GET http://${HOST}/absolute HTTP/1.1`, 'Host: elsewhere', `Authorization: Bearer ${AUTH}`])),
  ),
  single('asterisk-form', 'RFC 9112 §3.2.4 (asterisk-form)', one(request('OPTIONS * HTTP/1.1'))),
  single('head', 'RFC 9110 §9.3.2 (HEAD)', one(request('HEAD /head HTTP/1.1'), { heads: [0] })),
  single(
    'expect-continue',
    'RFC 9110 §10.1.1 (Expect: 100-continue)',
    one(withLength(['Expect: 100-continue'], 'sent at once')),
  ),
  single(
    'expect-continue-paused',
    'RFC 9110 §10.1.1 (body after the interim answer)',
    one('', {
      writes: [request('POST /upload HTTP/1.1', ['Expect: 100-continue', 'Content-Length: 5']), 150, 'hello'],
    }),
  ),
  single(
    'expect-obfuscated',
    'PortSwigger "HTTP/1.1 must die" (2025): Expect-based desync, `Expect: y 100-continue`',
    one(withLength(['Expect: y 100-continue'], 'hello')),
  ),
  single(
    'expect-unknown',
    'RFC 9110 §10.1.1 (an expectation nobody meets)',
    one(request('GET /expect HTTP/1.1', ['Expect: the-unexpected'])),
  ),
  single('connection-close', 'RFC 9112 §9.6 (close)', one(request('GET /close HTTP/1.1', ['Connection: close']))),
  single(
    'close-then-garbage',
    'HTTP Garden server bug 45 (bytes after Connection: close)',
    one(request('GET /close HTTP/1.1', ['Connection: close']) + `Invalid${CRLF}${CRLF}`),
  ),
  single(
    'obs-text-value',
    'RFC 9110 §5.5 (obs-text in a field value)',
    one(request('GET /latin HTTP/1.1', ['X-Latin: caf\xe9'])),
  ),
  single(
    'repeated-fields-in-order',
    'RFC 9110 §5.3 (field order, repeated names, name case)',
    one(
      request('GET /order HTTP/1.1', [
        'X-Dup: one',
        'x-DUP: two',
        'Accept: a/b',
        'X-Empty:',
        'Cookie: a=1',
        'Cookie: b=2',
      ]),
    ),
  ),
  single(
    'request-id-kept',
    'docs/sidecar.md (x-request-id passes when present)',
    one(request('GET /rid HTTP/1.1', ['X-Request-Id: hop-fixed-id'])),
  ),
  single(
    'proxy-headers-replaced',
    'docs/sidecar.md "Headers the app must not trust" (Forwarded, X-Forwarded-*, X-Real-IP)',
    one(
      request('GET /fwd HTTP/1.1', [
        'Forwarded: for=1.2.3.4',
        'X-Forwarded-For: 1.2.3.4',
        'X-Forwarded-Host: admin',
        'X-Forwarded-Proto: https',
        'X-Real-IP: 1.2.3.4',
      ]),
    ),
  ),
  single(
    'method-override-dropped',
    'docs/sidecar.md (method-override headers)',
    one(
      request('POST /override HTTP/1.1', [
        'X-HTTP-Method-Override: DELETE',
        'X-HTTP-Method: DELETE',
        'X-Method-Override: DELETE',
        'Content-Length: 0',
      ]),
    ),
  ),
  single(
    'get-with-body',
    'HTTP Garden transducer bug 21 (a GET body kept with its length)',
    one(request('GET /body HTTP/1.1', ['Content-Length: 10'], '1234567890')),
  ),
  single(
    'cl-zero-state',
    'PortSwigger "Browser-Powered Desync Attacks" (2022): CL.0',
    one(withLength([], bare(['GET /smuggled HTTP/1.1', 'Host: smuggled.example']))),
  ),
  single(
    'leading-empty-lines',
    'RFC 9112 §2.2 (empty lines before the request line)',
    one(`${CRLF}${CRLF}` + request('GET /late HTTP/1.1')),
  ),

  // --- Hop-by-hop fields (RFC 9110 §7.6.1) and Connection abuse.
  single(
    'connection-names-custom',
    'RFC 9110 §7.6.1; N. Davison, "Abusing HTTP hop-by-hop request headers" (2019)',
    one(request('GET /hop HTTP/1.1', ['Connection: keep-alive, X-Hop', 'X-Hop: dropped', 'X-Kept: kept'])),
  ),
  single(
    'connection-names-xff',
    'CVE-2022-31813 / CVE-2024-45410 (Connection naming X-Forwarded-For)',
    one(request('GET /hop HTTP/1.1', ['Connection: close, X-Forwarded-For', 'X-Forwarded-For: 10.0.0.1'])),
  ),
  single(
    'te-trailers-hop',
    'RFC 9110 §10.1.4 (TE is hop-by-hop)',
    one(
      request('GET /te HTTP/1.1', [
        'TE: trailers',
        'Connection: TE',
        'Keep-Alive: timeout=5',
        'Proxy-Connection: keep-alive',
      ]),
    ),
  ),
  single(
    'connection-content-length',
    'RFC 9110 §7.6.1: Connection naming a framing field',
    refused(withLength(['Connection: Content-Length'], SMUGGLED)),
    "Connection: Content-Length drops the length but forwards the body: the origin reads it as a second request with the attacker's baton-* headers",
  ),
  single(
    'connection-content-length-close',
    'RFC 9110 §7.6.1: Connection naming a framing field, with close',
    refused(withLength(['Connection: close, Content-Length'], SMUGGLED)),
    'Connection: Content-Length (with close)',
  ),
  single(
    'connection-content-length-nbsp',
    'RFC 9110 §7.6.1 with HTTP Garden server bug 41 (a Unicode space after the Connection option); found by fuzz/hop.ts',
    one(withLength(['Connection: close, Content-Length\xa0'], SMUGGLED)),
    'the hop-by-hop filter trims Connection options with String.prototype.trim(), so `Content-Length\\xa0` still drops Content-Length',
  ),
  single(
    'connection-transfer-encoding',
    'RFC 9110 §7.6.1: Connection naming a framing field',
    refused(
      request(
        'POST /upload HTTP/1.1',
        ['Connection: Transfer-Encoding', 'Transfer-Encoding: chunked'],
        chunk(SMUGGLED) + LAST,
      ),
    ),
    'Connection: Transfer-Encoding is dropped as hop-by-hop instead of refused',
  ),
  single(
    'connection-host',
    'RFC 9110 §7.6.1: Connection naming Host',
    refused(request('GET /host HTTP/1.1', ['Connection: Host'])),
    'Connection: Host drops Host on the inbound port: the app gets a request without Host',
  ),
  {
    id: 'connection-content-length-two-users',
    source: 'PortSwigger "HTTP request smuggling" (capturing other users\' requests), via Connection: Content-Length',
    known: "the leftover bytes of alice's body are glued to bob's next request on the pooled connection",
    connections: [
      refused(withLength(['Connection: Content-Length'], GLUE)),
      { user: 'bob', innocent: true, writes: [request('GET /bob/innocent HTTP/1.1', ['X-Who: bob'])], expect: 1 },
    ],
  },
  {
    id: 'connection-content-length-pipelined-victim',
    source: 'PortSwigger "HTTP request smuggling" (response queue poisoning), via Connection: Content-Length',
    known: 'the smuggled request is answered, and its answer goes to the next request in line',
    connections: [
      refused(withLength(['Connection: Content-Length'], SMUGGLED) + request('GET /alice/second HTTP/1.1')),
      { user: 'bob', innocent: true, writes: [request('GET /bob/innocent HTTP/1.1')], expect: 1 },
    ],
  },

  // --- Content-Length and Transfer-Encoding together (RFC 9112 §6.3, §11.2; PortSwigger CL.TE / TE.CL / TE.TE).
  single(
    'cl-te',
    'PortSwigger "HTTP request smuggling": CL.TE',
    refused(
      request(
        'POST /upload HTTP/1.1',
        ['Content-Length: 6', 'Transfer-Encoding: chunked'],
        `0${CRLF}${CRLF}G` + SMUGGLED,
      ),
    ),
  ),
  single(
    'te-cl',
    'PortSwigger "HTTP request smuggling": TE.CL',
    refused(
      request('POST /upload HTTP/1.1', ['Transfer-Encoding: chunked', 'Content-Length: 4'], chunk(SMUGGLED) + LAST),
    ),
  ),
  single(
    'te-xchunked',
    'PortSwigger TE.TE obfuscation: `Transfer-Encoding: xchunked`',
    refused(request('POST /upload HTTP/1.1', ['Transfer-Encoding: xchunked', 'Content-Length: 4'], LAST + SMUGGLED)),
  ),
  single(
    'te-space-before-colon',
    'PortSwigger TE.TE obfuscation; CVE-2019-16869 (`Transfer-Encoding : chunked`)',
    refused(request('POST /upload HTTP/1.1', ['Transfer-Encoding : chunked'], LAST + SMUGGLED)),
  ),
  single(
    'te-twice-other',
    'PortSwigger TE.TE obfuscation; CVE-2020-8287 (a second Transfer-Encoding field)',
    refused(request('POST /upload HTTP/1.1', ['Transfer-Encoding: chunked', 'Transfer-Encoding: x'], LAST + SMUGGLED)),
  ),
  single(
    'te-tab',
    'PortSwigger TE.TE obfuscation (`Transfer-Encoding:[tab]chunked`)',
    one(request('POST /upload HTTP/1.1', ['Transfer-Encoding:\tchunked'], chunk('tab') + LAST)),
  ),
  single(
    'te-leading-space-line',
    'PortSwigger TE.TE obfuscation; CVE-2020-7238 (` Transfer-Encoding: chunked`)',
    refused(request('POST /upload HTTP/1.1', [' Transfer-Encoding: chunked', 'Content-Length: 4'], LAST + SMUGGLED)),
  ),
  single(
    'te-after-bare-lf',
    'PortSwigger TE.TE obfuscation (`X: X[\\n]Transfer-Encoding: chunked`)',
    refused(
      request('POST /upload HTTP/1.1', ['X: X\nTransfer-Encoding: chunked', 'Content-Length: 4'], LAST + SMUGGLED),
    ),
  ),
  single(
    'te-name-bare-lf',
    'PortSwigger TE.TE obfuscation (`Transfer-Encoding[\\n]: chunked`)',
    refused(request('POST /upload HTTP/1.1', ['Transfer-Encoding\n: chunked', 'Content-Length: 4'], LAST + SMUGGLED)),
  ),
  single(
    'te-vertical-tab',
    'CVE-2019-18277 (`Transfer-Encoding: \\x0bchunked`)',
    refused(request('POST /upload HTTP/1.1', ['Transfer-Encoding: \x0bchunked', 'Content-Length: 4'], LAST + SMUGGLED)),
  ),
  single(
    'te-nbsp',
    'HTTP Garden server bugs 12, 41; RFC 9110 §5.5 (only SP and HTAB are whitespace)',
    refused(request('POST /upload HTTP/1.1', ['Transfer-Encoding: chunked\xa0'], LAST + SMUGGLED)),
    'Transfer-Encoding: chunked\\xa0 is trimmed to chunked by String.prototype.trim(): the head reaches the app before llhttp refuses it',
  ),
  single(
    'te-nbsp-both-sides',
    'HTTP Garden server bug 12 (`Transfer-Encoding: \\xa0chunked\\xa0`)',
    refused(request('POST /upload HTTP/1.1', ['Transfer-Encoding: \xa0chunked\xa0'], LAST + SMUGGLED)),
    'Unicode spaces around chunked',
  ),
  single(
    'te-nel',
    'HTTP Garden server bug 41 (\\x85 stripped from values)',
    refused(request('POST /upload HTTP/1.1', ['Transfer-Encoding: chunked\x85'], LAST + SMUGGLED)),
  ),
  single(
    'te-ff-bytes',
    'HTTP Garden server bug 46 (`Transfer-Encoding: \\xffchunked\\xff`)',
    refused(request('POST /upload HTTP/1.1', ['Transfer-Encoding: \xffchunked\xff'], LAST + SMUGGLED)),
  ),
  single(
    'te-comma-chunked',
    'HTTP Garden server bug 21, transducer bugs 9, 18 (`Transfer-Encoding: ,chunked`)',
    refused(request('POST /upload HTTP/1.1', ['Transfer-Encoding: ,chunked', 'Content-Length: 5'], LAST)),
  ),
  single(
    'te-chunked-twice',
    'HTTP Garden server bug 11, transducer bug 25 (two `Transfer-Encoding: chunked`)',
    refused(
      request('POST /upload HTTP/1.1', ['Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'], chunk('Z') + LAST),
    ),
  ),
  single(
    'te-chunked-identity',
    'CVE-2021-33037; RFC 9112 §6.3 (chunked not final)',
    refused(request('POST /upload HTTP/1.1', ['Transfer-Encoding: chunked, identity'], LAST + SMUGGLED)),
  ),
  single(
    'te-identity-chunked',
    'CVE-2021-33037 (`identity, chunked`)',
    refused(request('POST /upload HTTP/1.1', ['Transfer-Encoding: identity, chunked'], LAST)),
  ),
  single(
    'te-gzip-chunked',
    'RFC 9112 §6.1 (a coding before chunked); CVE-2022-1705',
    refused(request('POST /upload HTTP/1.1', ['Transfer-Encoding: gzip, chunked'], chunk('not really gzip') + LAST)),
  ),
  single(
    'te-unknown',
    'HTTP Garden server bug 44 (`Transfer-Encoding: blegh`)',
    refused(request('POST /upload HTTP/1.1', ['Transfer-Encoding: blegh'], chunk('Z') + LAST)),
  ),
  single(
    'te-obs-fold',
    'CVE-2022-32215 (multi-line Transfer-Encoding)',
    refused(request('POST /upload HTTP/1.1', ['Transfer-Encoding: chunked', '  , identity'], LAST + SMUGGLED)),
  ),
  single(
    'te-name-continued',
    'HTTP Garden server bug 37 (`Transfer-\\r\\nEncoding: chunked`)',
    refused(request('POST /upload HTTP/1.1', ['Transfer-', 'Encoding: chunked', 'Content-Length: 5'], LAST)),
  ),

  // --- Content-Length values (RFC 9110 §8.6: 1*DIGIT).
  single(
    'cl-duplicate-equal',
    'RFC 9110 §8.6 (repeated equal Content-Length); CVE-2019-20445',
    refused(request('POST /upload HTTP/1.1', ['Content-Length: 5', 'Content-Length: 5'], 'hello')),
  ),
  single(
    'cl-duplicate-conflict',
    'HTTP Garden server bugs 23, 33, transducer bug 22',
    refused(request('POST /upload HTTP/1.1', ['Content-Length: 0', `Content-Length: ${SMUGGLED.length}`], SMUGGLED)),
  ),
  single(
    'cl-list',
    'RFC 9110 §8.6 (`Content-Length: 5, 5`)',
    refused(request('POST /upload HTTP/1.1', ['Content-Length: 5, 5'], 'hello')),
  ),
  single(
    'cl-plus',
    'HTTP Garden server bug 10 (`+` prefix)',
    refused(request('POST /upload HTTP/1.1', ['Content-Length: +5'], 'hello')),
  ),
  single(
    'cl-hex',
    'HTTP Garden transducer bug 1 (`0x` prefix)',
    refused(request('POST /upload HTTP/1.1', ['Content-Length: 0x5'], 'hello')),
  ),
  single(
    'cl-negative',
    'HTTP Garden server bug 26 / CVE-2023-34188 (negative length)',
    refused(request('POST /upload HTTP/1.1', ['Content-Length: -5'], 'hello')),
  ),
  single(
    'cl-empty',
    'HTTP Garden server bugs 16, 38, transducer bug 5; CVE-2023-40225 (empty Content-Length)',
    refused(request('GET /upload HTTP/1.1', ['Content-Length: ']) + request('GET /after HTTP/1.1')),
  ),
  single(
    'cl-empty-then-value',
    'HTTP Garden server bug 42, transducer bug 11 / CVE-2023-40225',
    refused(request('POST /upload HTTP/1.1', ['Content-Length: ', `Content-Length: ${SMUGGLED.length}`], SMUGGLED)),
  ),
  single(
    'cl-inner-space',
    'CVE-2018-7159 (`Content-Length: 1 2`)',
    refused(request('POST /upload HTTP/1.1', ['Content-Length: 1 2'], 'twelve bytes')),
  ),
  single(
    'cl-leading-zeros',
    'HTTP Garden server bug 32 (leading zeros are digits too)',
    one(request('POST /upload HTTP/1.1', ['Content-Length: 0005'], 'hello')),
  ),
  single(
    'cl-trailing-garbage',
    'HTTP Garden server bug 29 (`Content-Length: 1Z`)',
    refused(request('POST /upload HTTP/1.1', ['Content-Length: 1Z'], 'Z')),
  ),
  single(
    'cl-space-before-colon',
    'CVE-2021-22959; HTTP Garden server bug 3 / CVE-2023-40518 (`Content-Length : 5`)',
    refused(request('POST /upload HTTP/1.1', ['Content-Length : 5'], 'hello')),
  ),
  single(
    'cl-leading-space-line',
    'CVE-2024-27982; HTTP Garden server bug 4 (whitespace before the first field name)',
    refused(
      bare(['POST /upload HTTP/1.1', ' Content-Length: 5', `Host: ${HOST}`, `Authorization: Bearer ${AUTH}`], 'hello'),
    ),
  ),
  single(
    'cl-nel-in-name',
    'HTTP Garden server bug 20, transducer bug 6 (`Content-Length\\x85: 10`)',
    refused(request('POST /upload HTTP/1.1', ['Content-Length\x85: 10'], '0123456789')),
  ),
  single(
    'cl-long-name',
    'CVE-2021-40346 (a long name beginning Content-Length)',
    one(request('POST /upload HTTP/1.1', [`Content-Length0${'a'.repeat(260)}: 0`, 'Content-Length: 5'], 'hello')),
  ),
  single(
    'cl-huge',
    'RFC 9112 §6.2 (a length no buffer holds)',
    refused(request('POST /upload HTTP/1.1', ['Content-Length: 99999999999999999999'], 'hello')),
  ),
  single(
    'field-without-colon',
    'CVE-2019-20444; HTTP Garden server bug 28, transducer bug 14 (`Content-Length 10`)',
    refused(request('POST /upload HTTP/1.1', ['Content-Length 10'], '0123456789')),
  ),

  // --- Chunked framing (RFC 9112 §7.1).
  single(
    'chunk-size-hex-prefix',
    'HTTP Garden server bugs 22, 25, transducer bugs 7, 19 (`0x5`)',
    cut(request('POST /chunks HTTP/1.1', ['Transfer-Encoding: chunked'], `0x5${CRLF}hello${CRLF}${LAST}`)),
  ),
  single(
    'chunk-size-underscore',
    'HTTP Garden server bug 1 / CVE-2023-47627 (`0_2e`)',
    cut(request('POST /chunks HTTP/1.1', ['Transfer-Encoding: chunked'], `0_2e${CRLF}${CRLF}` + SMUGGLED)),
  ),
  single(
    'chunk-size-signed',
    'HTTP Garden transducer bug 19 (`-0x0`)',
    cut(request('POST /chunks HTTP/1.1', ['Transfer-Encoding: chunked'], `-0x0${CRLF}${CRLF}`)),
  ),
  single(
    'chunk-size-leading-space',
    'HTTP Garden transducer bug 24 (whitespace before the chunk size)',
    cut(request('POST /chunks HTTP/1.1', ['Transfer-Encoding: chunked'], `   0${CRLF}${CRLF}`)),
  ),
  single(
    'chunk-size-trailing-space',
    'RFC 9112 §7.1 (BWS only before `;`)',
    cut(request('POST /chunks HTTP/1.1', ['Transfer-Encoding: chunked'], `5 ${CRLF}hello${CRLF}${LAST}`)),
  ),
  single(
    'chunk-size-overflow',
    'RFC 9112 §7.1 (a chunk size that overflows)',
    cut(request('POST /chunks HTTP/1.1', ['Transfer-Encoding: chunked'], `FFFFFFFFFFFFFFFFF${CRLF}x${CRLF}${LAST}`)),
  ),
  single(
    'chunk-size-empty',
    'HTTP Garden server bug 17 (an empty chunk size)',
    cut(request('POST /chunks HTTP/1.1', ['Transfer-Encoding: chunked'], `${CRLF}${CRLF}`)),
  ),
  single(
    'chunk-size-invalid',
    'HTTP Garden transducer bug 2 (`Z` chunk size)',
    cut(request('POST /chunks HTTP/1.1', ['Transfer-Encoding: chunked'], `Z${CRLF}ZZ${CRLF}ZZZ${CRLF}${CRLF}`)),
  ),
  single(
    'chunk-line-bare-lf',
    'CVE-2025-22871; HTTP Garden transducer bug 13 (bare LF ends a chunk line)',
    cut(request('POST /chunks HTTP/1.1', ['Transfer-Encoding: chunked'], `5\nhello${CRLF}${LAST}` + SMUGGLED)),
  ),
  single(
    'chunk-data-bare-lf',
    'HTTP Garden transducer bug 13 (bare LF after chunk data)',
    cut(request('POST /chunks HTTP/1.1', ['Transfer-Encoding: chunked'], `a${CRLF}0123456789\n${LAST}`)),
  ),
  single(
    'chunk-ext-bare-cr',
    'HTTP Garden server bug 31, transducer bugs 3, 36 (bare CR in a chunk extension)',
    cut(
      request(
        'POST /chunks HTTP/1.1',
        ['Transfer-Encoding: chunked'],
        `5\r\r;ABCD${CRLF}34${CRLF}E${CRLF}${LAST}` + SMUGGLED,
      ),
    ),
  ),
  single(
    'chunk-ext-bare-lf',
    'CVE-2025-55315; CVE-2024-52304 (bare LF in a chunk extension)',
    cut(
      request(
        'POST /chunks HTTP/1.1',
        ['Transfer-Encoding: chunked'],
        `2;\nxx${CRLF}45${CRLF}0${CRLF}${CRLF}` + SMUGGLED,
      ),
    ),
  ),
  single(
    'chunk-data-overrun',
    'RFC 9112 §7.1 (chunk data longer than its size)',
    cut(request('POST /chunks HTTP/1.1', ['Transfer-Encoding: chunked'], `5${CRLF}helloX${CRLF}${LAST}`)),
  ),
  single(
    'chunk-invalid-then-request',
    'HTTP Garden server bug 47 (no resync after an invalid chunk)',
    cut(
      request(
        'POST /chunks HTTP/1.1',
        ['Transfer-Encoding: chunked'],
        `INVALID!!!${CRLF}` + request('GET /resync HTTP/1.1'),
      ),
    ),
  ),
  single(
    'chunk-extra-crlf',
    'HTTP Garden transducer bug 17 (an extra CRLF before the last chunk)',
    cut(
      request(
        'POST /chunks HTTP/1.1',
        ['Transfer-Encoding: chunked'],
        `17${CRLF}0${CRLF}${CRLF}GET / HTTP/1.1${CRLF}${CRLF}${CRLF}${CRLF}${LAST}`,
      ),
    ),
  ),

  // --- Field syntax (RFC 9112 §2.2, §5; RFC 9110 §5.5).
  single(
    'bare-lf-lines',
    'CVE-2022-32214; HTTP Garden transducer bug 16 (bare LF line ends)',
    refused(request('GET /lf HTTP/1.1').replace(/\r\n/g, '\n')),
  ),
  single(
    'bare-cr-in-value',
    'CVE-2023-30589; HTTP Garden server bug 13, transducer bug 10 (bare CR)',
    refused(request('GET /cr HTTP/1.1', ['Visible: :/\rSmuggled: :)'])),
  ),
  single(
    'cr-header-end',
    'HTTP Garden server bug 30 (`\\r\\n\\rX` ends the head)',
    refused(request('GET /cr HTTP/1.1').slice(0, -2) + `\rZGET /evil: HTTP/1.1${CRLF}Host: ${HOST}${CRLF}${CRLF}`),
  ),
  single('obs-fold', 'RFC 9112 §5.2 (obs-fold)', refused(request('GET /fold HTTP/1.1', ['X-Folded: a', ' b']))),
  single(
    'nul-in-value',
    'HTTP Garden server bugs 2, 35, 43, transducer bug 12 (NUL in a value)',
    refused(request('GET /nul HTTP/1.1', ['Test: test\x00THESE BYTES GET DROPPED'])),
  ),
  single(
    'empty-field-name',
    'HTTP Garden server bugs 18, 27 / CVE-2023-25725 (empty field name)',
    refused(request('GET /empty HTTP/1.1', [': ignored', 'I: am chopped off'])),
  ),
  single(
    'nel-in-field-name',
    'HTTP Garden transducer bug 6 (`Header\\x85: value`)',
    refused(request('GET /nel HTTP/1.1', ['Header\x85: value'])),
  ),
  single(
    'ctl-in-field-name',
    'HTTP Garden server bug 14 (control characters in a name)',
    refused(request('GET /ctl HTTP/1.1', ['X\x01Y: z'])),
  ),
  single(
    'nbsp-value',
    'HTTP Garden server bug 41 (`\\x85admin\\xa0` kept as sent)',
    one(request('GET /login HTTP/1.1', ['X-User: \x85admin\xa0'])),
    'String.prototype.trim() strips \\x85/\\xa0 from values: the app reads another value than the one checked',
  ),
  single(
    'host-nbsp',
    'RFC 9110 §5.5, §7.2; HTTP Garden server bug 46 (`Host: <service>\\xa0`)',
    refused(bare(['GET /host HTTP/1.1', `Host: ${HOST}\xa0`, `Authorization: Bearer ${AUTH}`]), { status: 400 }),
    'Host: orders\\xa0 is accepted (trim() strips the Unicode space)',
  ),
  single(
    'host-nul',
    'HTTP Garden transducer bug 12 (`Host: a\\x00.b`)',
    refused(bare(['GET /host HTTP/1.1', `Host: ${HOST}\x00.evil`, `Authorization: Bearer ${AUTH}`])),
  ),
  single(
    'host-missing',
    'RFC 9112 §3.2 (no Host)',
    refused(bare(['GET /host HTTP/1.1', `Authorization: Bearer ${AUTH}`])),
  ),
  single(
    'host-twice',
    'RFC 9112 §3.2 (two Host fields)',
    refused(bare(['GET /host HTTP/1.1', `Host: ${HOST}`, 'Host: elsewhere', `Authorization: Bearer ${AUTH}`])),
  ),
  single('request-line-space-in-target', 'RFC 9112 §3 (one SP between parts)', refused(request('GET /a b HTTP/1.1'))),
  single('request-line-trailing-space', 'RFC 9112 §3 (trailing space)', refused(request('GET / HTTP/1.1 '))),
  single('request-line-bare-lf', 'HTTP Garden server bug 9 (`GET /\\nHTTP/1.1`)', refused(request('GET /\nHTTP/1.1'))),
  single(
    'request-line-no-version',
    'RFC 9112 §3 (a request line has a version: HTTP/0.9 is one line, no fields); HTTP Garden server bug 9',
    refused(request('GET /no-version')),
    'found by the hop fuzzer: a request line without a version (HTTP/0.9) is read as HTTP/1.1, its following lines as fields',
  ),
  single(
    'request-line-no-version-body',
    'RFC 9112 §3; found by fuzz/hop.ts (`POST /chunksHTTP/1.1` with a chunked body)',
    refused(request('POST /chunksHTTP/1.1', ['Transfer-Encoding: chunked'], chunk('hello') + LAST)),
    'found by the hop fuzzer: an HTTP/0.9-shaped request line is forwarded as HTTP/1.1 with fields and a chunked body',
  ),
  single(
    'request-line-double-space',
    'RFC 9112 §3 (a recipient MAY read a run of spaces as one)',
    one(request('POST  /spaced HTTP/1.1', ['Content-Length: 2'], 'hi')),
  ),
  single('version-1-2', 'RFC 9112 §2.3 (an unknown minor version)', refused(request('GET / HTTP/1.2'))),
  single('version-1-32', 'HTTP Garden server bug 5 (`HTTP/1.32`)', refused(request('GET /test HTTP/1.32'))),
  single('method-lower-case', 'RFC 9110 §9.1 (methods are case-sensitive)', refused(request('get /lower HTTP/1.1'))),
  single(
    'method-garbage',
    'HTTP Garden server bug 6 (a method that is not a token)',
    refused(request('G=":<>(e),[T];?" /get HTTP/1.1')),
  ),

  // --- Upgrade and tunnels (RFC 9110 §7.8, §9.3.6): refused with 501, consistently.
  single(
    'upgrade-websocket',
    'RFC 9110 §7.8; RFC 6455 §4.1 (websocket upgrade)',
    refused(
      request('GET /ws HTTP/1.1', [
        'Connection: Upgrade',
        'Upgrade: websocket',
        'Sec-WebSocket-Version: 13',
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      ]),
      UPGRADE,
    ),
    'Upgrade requests are forwarded as plain requests, or refused 400 rather than 501',
  ),
  single(
    'upgrade-without-connection',
    'RFC 9110 §7.8 (Upgrade not named in Connection)',
    refused(request('GET /ws HTTP/1.1', ['Upgrade: websocket']), UPGRADE),
    'Upgrade without Connection: upgrade is forwarded as a plain request',
  ),
  single(
    'upgrade-h2c',
    'Bishop Fox "h2c smuggling" (2020); RFC 7540 §3.2',
    refused(
      request('GET /h2c HTTP/1.1', [
        'Connection: Upgrade, HTTP2-Settings',
        'Upgrade: h2c',
        'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA',
      ]),
      UPGRADE,
    ),
    'h2c upgrade requests are not refused with 501',
  ),
  single(
    'upgrade-with-body',
    'RFC 9110 §7.8 (an upgrade carrying a body)',
    refused(
      request('POST /ws HTTP/1.1', ['Connection: Upgrade', 'Upgrade: websocket', 'Content-Length: 5'], 'hello'),
      UPGRADE,
    ),
    'an upgrade with a body is forwarded before the parser refuses it',
  ),
  single(
    'connect',
    'RFC 9110 §9.3.6 (CONNECT)',
    refused(bare([`CONNECT ${HOST}:443 HTTP/1.1`, `Host: ${HOST}:443`, `Authorization: Bearer ${AUTH}`]), {
      status: 405,
      code: 'BATON_METHOD_NOT_ALLOWED',
    }),
  ),

  // --- Head size (docs/sidecar.md: limits.maxHeaderBytes, 16 KiB by default).
  single(
    'head-many-small-fields',
    'RFC 6585 §5 (431); docs/sidecar.md limits.maxHeaderBytes counts the whole head',
    refused(
      request(
        'GET /big HTTP/1.1',
        Array.from({ length: 15_000 }, (_, i) => `${((i % 26) + 10).toString(36)}:`),
      ),
      TOO_LARGE,
    ),
    'the head limit counts only names and values: ~60 KB heads of short fields reach the app',
  ),
  single(
    'head-one-large-field',
    'RFC 6585 §5 (431 for one large field)',
    refused(request('GET /big HTTP/1.1', [`X-Big: ${'b'.repeat(20_000)}`]), TOO_LARGE),
  ),

  // --- Pacing and several users (PortSwigger pause-based desync; connection reuse across users).
  single(
    'pause-between-head-and-body',
    'PortSwigger "Browser-Powered Desync Attacks" (2022): pause-based desync',
    one('', { writes: [request('POST /slow HTTP/1.1', ['Content-Length: 5']), 200, 'hello'] }),
  ),
  {
    id: 'two-users-innocent',
    source: "RFC 9112 §9.3 (a pooled connection carries several users' requests)",
    connections: [
      one(withLength([], 'alice body')),
      { user: 'bob', innocent: true, writes: [withLength([], 'bob body')], expect: 1 },
    ],
  },
  {
    id: 'two-users-cl-te-glue',
    source: 'PortSwigger "HTTP request smuggling" (capturing other users\' requests): CL.TE with a glued prefix',
    connections: [
      refused(
        request(
          'POST /upload HTTP/1.1',
          ['Content-Length: ' + (5 + GLUE.length), 'Transfer-Encoding: chunked'],
          LAST + GLUE,
        ),
      ),
      { user: 'bob', innocent: true, writes: [request('GET /bob/innocent HTTP/1.1')], expect: 1 },
    ],
  },
  {
    id: 'two-users-spoofed-identity',
    source: 'docs/sidecar.md "Headers the app must not trust" (baton-* written by the caller)',
    connections: [
      one(
        request('GET /spoof HTTP/1.1', [
          'baton-subject: bob',
          'Baton-Caller: admin',
          'BATON-CHAIN: admin',
          'baton_subject: bob',
          'baton-context: forged',
        ]),
      ),
      { user: 'bob', innocent: true, writes: [request('GET /bob HTTP/1.1', ['baton-subject: alice'])], expect: 1 },
    ],
  },
];

// --- The answer direction: what the app writes back, straight to a client and through the pair.
const answer = (status: string, fields: readonly string[], body = ''): string =>
  [`HTTP/1.1 ${status}`, ...fields].join(CRLF) + CRLF + CRLF + body;

export const ANSWER_CASES: readonly AnswerCase[] = [
  {
    id: 'length',
    source: 'RFC 9112 §6.2',
    answer: answer('200 OK', ['Content-Type: text/plain', 'Content-Length: 5'], 'hello'),
  },
  {
    id: 'chunked',
    source: 'RFC 9112 §7.1',
    answer: answer('200 OK', ['Transfer-Encoding: chunked'], chunk('hello ') + chunk('world') + LAST),
  },
  {
    id: 'chunked-extensions-trailers',
    source: 'RFC 9112 §7.1.1, §7.1.2',
    answer: answer(
      '200 OK',
      ['Transfer-Encoding: chunked', 'Trailer: X-Sum'],
      `5;a=b${CRLF}hello${CRLF}0${CRLF}X-Sum: 5${CRLF}${CRLF}`,
    ),
  },
  {
    id: 'until-close',
    source: 'RFC 9112 §6.3 item 8 (read to the close)',
    answer: answer('200 OK', ['Content-Type: text/plain'], 'to the end'),
    close: true,
  },
  {
    id: 'http-1-0',
    source: 'RFC 9112 §2.3 (an HTTP/1.0 answer)',
    answer: `HTTP/1.0 200 OK${CRLF}Content-Type: text/plain${CRLF}${CRLF}old`,
    close: true,
  },
  { id: 'no-content', source: 'RFC 9112 §6.3 item 1 (204)', answer: answer('204 No Content', ['X-Done: yes']) },
  { id: 'not-modified', source: 'RFC 9112 §6.3 item 1 (304)', answer: answer('304 Not Modified', ['ETag: "v1"']) },
  {
    id: 'head-length',
    source: 'RFC 9110 §9.3.2 (HEAD)',
    method: 'HEAD',
    answer: answer('200 OK', ['Content-Length: 42']),
  },
  {
    id: 'interim',
    source: 'RFC 9110 §15.2 (1xx before the answer)',
    answer:
      `HTTP/1.1 103 Early Hints${CRLF}Link: </a.css>; rel=preload${CRLF}${CRLF}` +
      answer('200 OK', ['Content-Length: 2'], 'ok'),
  },
  {
    id: 'field-case-and-order',
    source: "docs/design.md (answer field names keep the app's case)",
    answer: answer('200 OK', ['X-Mixed-Case: 1', 'set-cookie: a=1', 'Set-Cookie: b=2', 'Content-Length: 2'], 'ok'),
  },
  {
    id: 'hop-by-hop-fields',
    source: "RFC 9110 §7.6.1 (an answer's hop-by-hop fields)",
    answer: answer(
      '200 OK',
      ['Connection: keep-alive, X-Hop', 'Keep-Alive: timeout=1', 'X-Hop: dropped', 'Content-Length: 2'],
      'ok',
    ),
  },
  {
    id: 'connection-content-length',
    source: 'RFC 9110 §7.6.1: Connection naming a framing field',
    known: 'an answer with Connection: Content-Length hangs the caller',
    refuse: BAD_UPSTREAM,
    answer: answer('200 OK', ['Connection: Content-Length', 'Content-Length: 5'], 'hello'),
  },
  {
    id: 'connection-transfer-encoding',
    source: 'RFC 9110 §7.6.1: Connection naming a framing field',
    answer: answer('200 OK', ['Connection: Transfer-Encoding', 'Transfer-Encoding: chunked'], chunk('hello') + LAST),
  },
  {
    id: 'gzip-chunked',
    source: 'RFC 9112 §6.1 (a coding before chunked)',
    known: 'Transfer-Encoding: gzip, chunked answers arrive with an empty body',
    refuse: BAD_UPSTREAM,
    answer: answer('200 OK', ['Transfer-Encoding: gzip, chunked'], chunk('not really gzip') + LAST),
  },
  {
    id: 'te-nbsp',
    source: 'HTTP Garden server bug 12; RFC 9110 §5.5 (a Unicode space after chunked)',
    known: "the answer's Transfer-Encoding: chunked\\xa0 is trimmed to chunked",
    answer: answer('200 OK', ['Transfer-Encoding: chunked\xa0'], chunk('hello') + LAST),
    close: true,
  },
  {
    id: 'length-and-chunked',
    source: 'RFC 9112 §6.3 item 3 (an answer with both)',
    refuse: BAD_UPSTREAM,
    answer: answer('200 OK', ['Content-Length: 3', 'Transfer-Encoding: chunked'], chunk('hello') + LAST),
  },
  {
    id: 'length-twice',
    source: 'RFC 9110 §8.6 (two Content-Length fields)',
    refuse: BAD_UPSTREAM,
    answer: answer('200 OK', ['Content-Length: 2', 'Content-Length: 5'], 'hello'),
  },
  {
    id: 'response-splitting',
    source: 'RFC 9112 §11.1; PortSwigger response queue poisoning (bytes after the answer)',
    answer: answer('200 OK', ['Content-Length: 2'], 'ok') + answer('200 OK', ['Content-Length: 4'], 'evil'),
  },
  {
    id: 'obs-fold',
    source: 'RFC 9112 §5.2 (obs-fold in an answer)',
    refuse: BAD_UPSTREAM,
    answer: answer('200 OK', ['X-Folded: a', ' b', 'Content-Length: 2'], 'ok'),
  },
  {
    id: 'bare-lf',
    source: 'RFC 9112 §2.2 (bare LF in an answer)',
    refuse: BAD_UPSTREAM,
    answer: `HTTP/1.1 200 OK\nContent-Length: 2\n\nok`,
  },
  {
    id: 'cut-short',
    source: 'RFC 9112 §8 (an incomplete answer)',
    answer: answer('200 OK', ['Content-Length: 10'], 'short'),
    close: true,
  },
];
