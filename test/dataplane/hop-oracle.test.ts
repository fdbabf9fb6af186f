/**
 * The hop harness's oracle on its own, without a process: the RFC 9112
 * reference framer reads what the grammar allows and refuses the rest, and
 * the verdict (test/dataplane/hop/verdict.ts) passes what the normalization
 * allows and flags each kind of desync the harness exists to catch. If
 * these fail, test/e2e/hop-differential.test.ts proves nothing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { OriginEvent, ObservedRequest } from './hop/origins.ts';
import { referenceReading, compareAnswers, compareWindows, type Window } from './hop/verdict.ts';
import { redact } from './hop/run.ts';
import type { ReadResponse } from './hop/response-reader.ts';

const CRLF = '\r\n';
const read = (text: string) =>
  referenceReading(Buffer.from(text, 'latin1')).map((m) =>
    m.kind === 'request'
      ? { target: m.target, framing: m.framing, body: m.body.toString('latin1'), complete: m.complete }
      : 'refused',
  );

const IDENTITY = (user: string): Array<[string, string]> => [
  ['baton-subject', user],
  ['baton-subject-issuer', 'https://idp'],
  ['baton-subject-type', 'user'],
  ['baton-caller', 'gateway'],
  ['baton-chain', 'gateway'],
  ['baton-scope', 'shop'],
  ['baton-txn', 't'],
  ['baton-request', 'r'],
  ['baton-context', 'c'],
];

function request(
  target: string,
  headers: Array<[string, string]>,
  extra: Partial<ObservedRequest> = {},
): ObservedRequest {
  return {
    kind: 'request',
    connection: 0,
    method: 'GET',
    target,
    version: '1.1',
    headers,
    framing: 'none',
    body: Buffer.alloc(0),
    complete: true,
    ...extra,
  };
}
const echo = (method: string, target: string, subject: string | null): ReadResponse => ({
  status: 200,
  headers: [['content-type', 'application/json']],
  body: Buffer.from(JSON.stringify({ method, target, subject })),
});
const refusal = (status: number, code: string, reason?: string): ReadResponse => ({
  status,
  headers: [['content-type', 'application/problem+json']],
  body: Buffer.from(JSON.stringify({ status, code, ...(reason === undefined ? {} : { reason }) })),
});

function window(events: OriginEvent[], responses: ReadResponse[], extra: Partial<Window> = {}): Window {
  return {
    user: 'alice',
    sent: Buffer.from(`GET / HTTP/1.1${CRLF}Host: node${CRLF}${CRLF}`, 'latin1'),
    responses,
    garbled: false,
    closed: false,
    events,
    bytesUpstream: 100,
    ...extra,
  };
}

describe('the reference framer (RFC 9112 alone)', () => {
  it('reads lengths, chunks and pipelines as the grammar says', () => {
    assert.deepEqual(
      read(
        `POST /a HTTP/1.1${CRLF}Host: a${CRLF}Content-Length: 3${CRLF}${CRLF}abcGET /b HTTP/1.1${CRLF}Host: a${CRLF}${CRLF}`,
      ),
      [
        { target: '/a', framing: 'length', body: 'abc', complete: true },
        { target: '/b', framing: 'none', body: '', complete: true },
      ],
    );
    assert.deepEqual(
      read(
        `POST /c HTTP/1.1${CRLF}Host: a${CRLF}Transfer-Encoding: ,chunked${CRLF}${CRLF}3;x=y${CRLF}abc${CRLF}0${CRLF}T: 1${CRLF}${CRLF}`,
      ),
      [{ target: '/c', framing: 'chunked', body: 'abc', complete: true }],
    );
  });

  it('refuses the smuggling shapes: both framings, two lengths, a coding after chunked, bare LF, obs-fold, Unicode spaces', () => {
    const refused = [
      `POST / HTTP/1.1${CRLF}Host: a${CRLF}Content-Length: 5${CRLF}Transfer-Encoding: chunked${CRLF}${CRLF}`,
      `POST / HTTP/1.1${CRLF}Host: a${CRLF}Content-Length: 5${CRLF}Content-Length: 5${CRLF}${CRLF}`,
      `POST / HTTP/1.1${CRLF}Host: a${CRLF}Transfer-Encoding: chunked, identity${CRLF}${CRLF}`,
      `POST / HTTP/1.1${CRLF}Host: a${CRLF}Transfer-Encoding: chunked\xa0${CRLF}${CRLF}`,
      `GET / HTTP/1.1\nHost: a${CRLF}${CRLF}`,
      `GET / HTTP/1.1${CRLF}Host: a${CRLF}X: a${CRLF} b${CRLF}${CRLF}`,
      `GET / HTTP/1.1${CRLF}Content-Length : 0${CRLF}Host: a${CRLF}${CRLF}`,
      `GET / HTTP/1.1${CRLF}${CRLF}`,
      `POST / HTTP/1.1${CRLF}Host: a${CRLF}Transfer-Encoding: chunked${CRLF}${CRLF}0x5${CRLF}hello${CRLF}0${CRLF}${CRLF}`,
    ];
    for (const text of refused) assert.equal(read(text).at(-1), 'refused', JSON.stringify(text));
  });
});

describe('the hop verdict', () => {
  const sent = `POST /p HTTP/1.1${CRLF}Host: node${CRLF}Connection: X-Hop${CRLF}X-Hop: 1${CRLF}Content-Length: 3${CRLF}${CRLF}abc`;
  const straight = window(
    [
      request(
        '/p',
        [
          ['Host', 'node'],
          ['Authorization', 'Bearer t'],
          ['Connection', 'X-Hop'],
          ['X-Hop', '1'],
          ['X-Keep', 'k'],
          ['Content-Length', '3'],
        ],
        { method: 'POST', framing: 'length', body: Buffer.from('abc') },
      ),
    ],
    [echo('POST', '/p', null)],
    { sent: Buffer.from(sent, 'latin1') },
  );

  it('passes what the pair may change: hop-by-hop and named fields, Host, framing fields, identity added', () => {
    const through = window(
      [
        request(
          '/p',
          [
            ['host', '127.0.0.1:7070'],
            ['X-Keep', 'k'],
            ...IDENTITY('alice'),
            ['x-request-id', 'x'],
            ['Content-Length', '3'],
          ],
          { method: 'POST', framing: 'length', body: Buffer.from('abc') },
        ),
      ],
      [echo('POST', '/p', 'alice')],
      { sent: Buffer.from(sent, 'latin1') },
    );
    assert.deepEqual(compareWindows(straight, through, undefined, 'pair'), []);
  });

  it('flags a body read as a second request (Connection: Content-Length), and a caller-written baton-* field', () => {
    const through = window(
      [
        request('/p', [['host', 'h'], ['X-Keep', 'k'], ...IDENTITY('alice')], { method: 'POST' }),
        request('/smuggled', [
          ['Host', 'x'],
          ['baton-subject', 'mallory'],
        ]),
      ],
      [echo('POST', '/p', 'alice')],
      { sent: Buffer.from(sent, 'latin1') },
    );
    const found = compareWindows(straight, through, undefined, 'pair').join('\n');
    assert.match(found, /message 0 differs/);
    assert.match(found, /one more message through baton/);
    assert.match(found, /baton-subject \["mallory"\], sent by alice/);
  });

  it('flags a changed value, a dropped field and a missing refusal, and the residue of a desync', () => {
    const through = window(
      [
        request('/p', [['host', 'h'], ...IDENTITY('alice')], {
          method: 'POST',
          framing: 'length',
          body: Buffer.from('abc'),
        }),
        { kind: 'partial', connection: 0, bytes: 12 },
      ],
      [echo('POST', '/p', 'alice')],
      { sent: Buffer.from(sent, 'latin1') },
    );
    const found = compareWindows(straight, through, { status: 400, code: 'BATON_REQUEST_FRAMING' }, 'pair').join('\n');
    assert.match(found, /message 0 differs/);
    assert.match(found, /expected baton to refuse with 400 BATON_REQUEST_FRAMING/);
    assert.match(found, /expected not a byte upstream/);
    assert.match(found, /12 bytes of an unfinished head/);
  });

  it('passes a refusal that sent nothing upstream, and flags one that sent bytes first', () => {
    const refused = window([], [refusal(400, 'BATON_REQUEST_FRAMING', 'content-length')], {
      closed: true,
      bytesUpstream: 0,
      sent: Buffer.from(sent, 'latin1'),
    });
    assert.deepEqual(compareWindows(straight, refused, { status: 400, code: 'BATON_REQUEST_FRAMING' }, 'inbound'), []);
    const late = window([], [refusal(400, 'BATON_REQUEST_FRAMING', 'content-length')], {
      closed: true,
      bytesUpstream: 90,
      sent: Buffer.from(sent, 'latin1'),
    });
    assert.match(compareWindows(straight, late, undefined, 'inbound').join('\n'), /after sending 90 bytes upstream/);
  });

  it('takes a request baton answered itself out of the straight reading, even mid-pipeline, and knows its answer to HEAD', () => {
    const two = window(
      [request('/one', [['Host', 'node']]), request('/two', [['Host', 'node']])],
      [echo('GET', '/one', null), echo('GET', '/two', null)],
    );
    const headRefusal: ReadResponse = {
      status: 401,
      headers: [['content-type', 'application/problem+json']],
      body: Buffer.alloc(0),
    };
    const through = window(
      [request('/two', [['host', 'h'], ...IDENTITY('alice')])],
      [headRefusal, echo('GET', '/two', 'alice')],
    );
    assert.deepEqual(compareWindows(two, through, undefined, 'pair'), []);
  });

  it('lets baton hold bytes the origin refused before they were a head, but never drop a request silently', () => {
    const straight = window(
      [request('/a', [['Host', 'node']]), { kind: 'refused', connection: 0, reason: 'bare-lf' }],
      [echo('GET', '/a', null)],
    );
    const holding = window([request('/a', [['host', 'h'], ...IDENTITY('alice')])], [echo('GET', '/a', 'alice')]);
    assert.deepEqual(compareWindows(straight, holding, undefined, 'pair'), []);
    const dropped = window([], []);
    assert.match(compareWindows(straight, dropped, undefined, 'pair').join(), /neither refused nor closed/);
  });

  it("flags a refusal of bob's innocent request (a connection alice left dirty), which a refusal alone would excuse", () => {
    const bobStraight = window([request('/bob', [['Host', 'node']])], [echo('GET', '/bob', null)], { user: 'bob' });
    const refused = window([], [refusal(400, 'BATON_REQUEST_FRAMING', 'host')], { user: 'bob', bytesUpstream: 0 });
    assert.deepEqual(compareWindows(bobStraight, refused, undefined, 'pair'), []);
    assert.match(
      compareWindows(bobStraight, refused, undefined, 'pair', true).join('\n'),
      /refused bob's well-formed request \(400 BATON_REQUEST_FRAMING host\)/,
    );
  });

  it("flags bob's connection getting an answer read for alice, or for another request", () => {
    const bobStraight = window([request('/bob', [['Host', 'node']])], [echo('GET', '/bob', null)], { user: 'bob' });
    const poisoned = window(
      [request('/bob', [['host', 'h'], ...IDENTITY('bob')])],
      [echo('GET', '/smuggled', 'alice')],
      { user: 'bob' },
    );
    const found = compareWindows(bobStraight, poisoned, undefined, 'pair').join('\n');
    assert.match(found, /answer to GET \/smuggled for GET \/bob/);
    assert.match(found, /bob's connection got an answer for a request read as "alice"/);
  });

  it('answers: passes the same answer or a 502, flags a hang and a changed body', () => {
    const direct = {
      kind: 'answer',
      status: 200,
      headers: [
        ['Content-Length', '5'],
        ['X-A', '1'],
      ],
      body: Buffer.from('hello'),
    } as const;
    assert.deepEqual(
      compareAnswers(
        direct,
        {
          kind: 'answer',
          status: 200,
          headers: [
            ['X-A', '1'],
            ['date', 'now'],
            ['transfer-encoding', 'chunked'],
          ],
          body: Buffer.from('hello'),
        },
        undefined,
      ),
      [],
    );
    assert.deepEqual(
      compareAnswers(
        direct,
        {
          kind: 'answer',
          status: 502,
          headers: [['content-type', 'application/problem+json']],
          body: Buffer.from('{"code":"BATON_UPSTREAM_UNREACHABLE"}'),
        },
        undefined,
      ),
      [],
    );
    assert.match(compareAnswers(direct, { kind: 'hang' }, undefined).join(), /left waiting/);
    assert.match(
      compareAnswers(
        direct,
        { kind: 'answer', status: 200, headers: [['X-A', '1']], body: Buffer.from('') },
        undefined,
      ).join(),
      /the answer differs/,
    );
  });

  it('keeps tokens out of every message, whole or cut short, and context handles too', () => {
    const token = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';
    assert.equal(redact(`a ${token} b`, [token]), 'a <token> b');
    assert.equal(redact(`"Bearer ${token.slice(0, 30)}…(389)"`, []), '"Bearer <token>…(389)"');
    assert.equal(redact('baton-context: bctx_abcDEF-_123', []), 'baton-context: <handle>');
  });
});
