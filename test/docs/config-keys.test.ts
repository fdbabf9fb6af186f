/**
 * Every configuration key of every part is documented, with its default, on
 * its page in docs/: the table between the config-keys markers must equal
 * the one the part's schema gives. A key added to a schema without running
 * `node scripts/config-reference.ts` fails here, naming the page and key.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Type } from '@sinclair/typebox';
import { describeKeys, markdownKeys } from '../../src/config/describe.ts';
import { CONFIG_REFERENCES, markers, pagePath, withReference } from '../../scripts/config-reference.ts';

describe('configuration reference in docs/', () => {
  for (const reference of CONFIG_REFERENCES) {
    it(`${reference.page} documents every ${reference.name} key with its default`, () => {
      const text = readFileSync(pagePath(reference), 'utf8');
      const expected = withReference(text, reference);
      assert.ok(
        expected !== undefined,
        `${reference.page}: expected a table between ${markers(reference.name).open} and ${markers(reference.name).close}`,
      );
      if (expected === text) return;
      const documented = new Set(text.split('\n').filter((line) => line.startsWith('| `')));
      const missing = expected.split('\n').filter((line) => line.startsWith('| `') && !documented.has(line));
      assert.fail(
        `${reference.page} is out of date for: ${missing.map((line) => line.split('|')[1]?.trim()).join(', ')}; run node scripts/config-reference.ts`,
      );
    });
  }

  it('lists list entries, nested blocks and defaults the way the docs show them', () => {
    const schema = Type.Object({
      port: Type.Integer({ default: 7070, description: 'a port' }),
      breaker: Type.Object({ openMs: Type.Integer({ default: 1000, description: 'open | closed' }) }, { default: {} }),
      issuers: Type.Array(Type.Object({ issuer: Type.String({ description: 'an URL' }) }), { default: [] }),
    });
    const table = markdownKeys(describeKeys(schema));
    assert.match(table, /^\| `port` \| `7070` \| a port \|$/m);
    assert.match(table, /^\| `breaker\.openMs` \| `1000` \| open \\\| closed \|$/m);
    assert.match(table, /^\| `issuers\[\]\.issuer` \| required in each entry \| an URL \|$/m);
    assert.equal(
      describeKeys(schema).find((k) => k.key === 'issuers[].issuer')?.env,
      'BATON_ISSUERS',
      'set with its list',
    );
  });
});
