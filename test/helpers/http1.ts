/**
 * A request or response head as the data plane's parser reads it, from
 * field lines written out in a test: the same MessageHead the forwarder is
 * handed, Connection options included.
 */
import { Http1Parser, type MessageHead } from '../../src/dataplane/http1-parser.ts';

/** Parses `GET / HTTP/1.1` (or `firstLine`) with `fields` (`[name, value, …]`); throws what the parser throws. */
export function headOf(
  fields: readonly string[],
  kind: 'request' | 'response' = 'request',
  firstLine = kind === 'request' ? 'GET / HTTP/1.1' : 'HTTP/1.1 200 OK',
): MessageHead {
  let head: MessageHead | undefined;
  const parser = new Http1Parser(kind, { onHead: (h) => void (head = h) }, { maxHeadBytes: 65_536 });
  try {
    let text = `${firstLine}\r\n`;
    for (let i = 0; i + 1 < fields.length; i += 2) text += `${fields[i] as string}: ${fields[i + 1] as string}\r\n`;
    parser.execute(Buffer.from(`${text}\r\n`, 'latin1'));
  } finally {
    parser.close();
  }
  if (head === undefined) throw new Error('no head parsed');
  return head;
}
