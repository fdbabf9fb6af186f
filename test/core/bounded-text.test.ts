import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { BodyTooLargeError, readBoundedText } from '../../src/core/bounded-text.ts';

describe('bounded text reader', () => {
  it('reads a body of exactly maxBytes, across chunks and multi-byte characters', async () => {
    const text = 'ab€';
    const bytes = Buffer.from(text);
    const body = Readable.from([bytes.subarray(0, 3), bytes.subarray(3)]);
    assert.equal(await readBoundedText(body, bytes.length), text);
  });

  it('refuses one byte more, destroys the stream and stops reading', async () => {
    let pulled = 0;
    const body = Readable.from(
      (function* () {
        for (let i = 0; i < 100; i++) {
          pulled++;
          yield Buffer.alloc(10);
        }
      })(),
    );
    await assert.rejects(
      readBoundedText(body, 25),
      (error: unknown) => error instanceof BodyTooLargeError && error.maxBytes === 25,
    );
    assert.equal(body.destroyed, true);
    assert.ok(pulled < 10, `expected the reader to stop at the bound, it pulled ${pulled} chunks`);
  });

  it('counts string chunks in UTF-8 bytes, not characters', async () => {
    await assert.rejects(readBoundedText(Readable.from(['€€']), 5), BodyTooLargeError);
    assert.equal(await readBoundedText(Readable.from(['€€']), 6), '€€');
  });

  it('passes a read error through as it is', async () => {
    const body = new Readable({
      read() {
        this.destroy(Object.assign(new Error('reset'), { code: 'ECONNRESET' }));
      },
    });
    await assert.rejects(readBoundedText(body, 100), { code: 'ECONNRESET' });
  });
});
