/**
 * fast-check mutations of the hop corpus, for `npm test` (a fixed seed, a
 * few per lane) and `npm run fuzz` (a random seed, as many as time allows).
 * A mutation takes one corpus case's first connection and applies one to
 * three edits: a byte replaced, inserted, deleted or doubled (CR, LF, SP,
 * HTAB, NUL, VT, `:`, `,`, `0`, Unicode spaces \xa0 and \x85 among them);
 * a field line from the smuggling families inserted into the head
 * (Connection, Transfer-Encoding, Content-Length, Host, Expect, Upgrade,
 * baton-*); whitespace around a field's colon or value; or a smuggled
 * request, whole or half, pipelined after it. The AUTH and HOST
 * placeholders are single characters no byte edit can produce.
 */
import fc from 'fast-check';
import { GLUE, HOST, type RequestCase, SMUGGLED } from './corpus.ts';

const SPECIAL = [0x0d, 0x0a, 0x20, 0x09, 0x00, 0x0b, 0x3a, 0x2c, 0x30, 0xa0, 0x85];
const FIELDS = [
  'Connection: Content-Length',
  'Connection: Transfer-Encoding',
  'Connection: Host',
  'Connection: close',
  'Connection: keep-alive, Upgrade',
  'Transfer-Encoding: chunked',
  'Transfer-Encoding: chunked\xa0',
  'Content-Length: 0',
  'Content-Length: 5',
  'Content-Length: 5, 5',
  'Host: elsewhere',
  `Host: ${HOST}\xa0`,
  'Expect: 100-continue',
  'Upgrade: websocket',
  'X-Pad: \xa0',
  ' X-Fold: y',
  'baton-subject: mallory',
  'baton_chain: admin',
];
const SPACES = [' ', '\t', '\xa0', '\x85', '\x0b', '\x0c'];

type Edit =
  | {
      readonly kind: 'byte';
      readonly op: 'replace' | 'insert' | 'delete' | 'duplicate';
      readonly at: number;
      readonly byte: number;
    }
  | { readonly kind: 'field'; readonly at: number; readonly field: string }
  | {
      readonly kind: 'space';
      readonly at: number;
      readonly where: 'before-colon' | 'after-colon' | 'end';
      readonly space: string;
    }
  | { readonly kind: 'pipeline'; readonly whole: boolean };

const edit: fc.Arbitrary<Edit> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('byte' as const),
      op: fc.constantFrom('replace' as const, 'insert' as const, 'delete' as const, 'duplicate' as const),
      at: fc.nat(),
      byte: fc.oneof(fc.constantFrom(...SPECIAL), fc.integer({ min: 0, max: 255 })),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('field' as const), at: fc.nat(), field: fc.constantFrom(...FIELDS) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('space' as const),
      at: fc.nat(),
      where: fc.constantFrom('before-colon' as const, 'after-colon' as const, 'end' as const),
      space: fc.constantFrom(...SPACES),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('pipeline' as const), whole: fc.boolean() }) },
);

/** Field lines of the head: [start, end) of each line after the request line. */
function fieldLines(text: string): Array<[number, number]> {
  const headEnd = text.indexOf('\r\n\r\n');
  const lines: Array<[number, number]> = [];
  let at = text.indexOf('\r\n');
  while (at !== -1 && at < headEnd) {
    const next = text.indexOf('\r\n', at + 2);
    lines.push([at + 2, next]);
    at = next;
  }
  return lines;
}

export function applyEdit(text: string, e: Edit): string {
  switch (e.kind) {
    case 'byte': {
      if (text.length === 0) return text;
      const i = e.at % text.length;
      const char = text[i] as string;
      // The placeholders stay whole: an edit that would split one lands beside it.
      const byte = String.fromCharCode(e.byte);
      if (e.op === 'replace') return char > '\xff' ? text : text.slice(0, i) + byte + text.slice(i + 1);
      if (e.op === 'insert') return text.slice(0, i) + byte + text.slice(i);
      if (e.op === 'delete') return text.slice(0, i) + text.slice(i + 1);
      return text.slice(0, i) + char + text.slice(i);
    }
    case 'field': {
      const lines = fieldLines(text);
      if (lines.length === 0) return text;
      const [start] = lines[e.at % lines.length] as [number, number];
      return text.slice(0, start) + e.field + '\r\n' + text.slice(start);
    }
    case 'space': {
      const lines = fieldLines(text);
      if (lines.length === 0) return text;
      const [start, end] = lines[e.at % lines.length] as [number, number];
      const colon = text.indexOf(':', start);
      if (colon === -1 || colon > end) return text;
      const at = e.where === 'before-colon' ? colon : e.where === 'after-colon' ? colon + 1 : end;
      return text.slice(0, at) + e.space + text.slice(at);
    }
    case 'pipeline':
      return text + (e.whole ? SMUGGLED : GLUE);
  }
}

/** `count` mutated cases from `seed`: each one connection of alice's, its answers not known in advance. */
export function mutatedCases(corpus: readonly RequestCase[], seed: number, count: number): RequestCase[] {
  const draws = fc.sample(
    fc.tuple(fc.nat({ max: corpus.length - 1 }), fc.array(edit, { minLength: 1, maxLength: 3 })),
    { seed, numRuns: count },
  );
  return draws.map(([index, edits], run) => {
    const base = corpus[index] as RequestCase;
    const first = base.connections[0];
    const template = (first?.writes ?? []).filter((w): w is string => typeof w === 'string').join('');
    const text = edits.reduce(applyEdit, template);
    return {
      id: `mutation-${seed}-${run}`,
      source: `fast-check mutation of ${base.id} (seed ${seed}, run ${run}): ${JSON.stringify(text.length > 600 ? `${text.slice(0, 600)}…` : text)}`,
      connections: [{ user: 'alice', writes: [text], expect: 0 }],
    };
  });
}
