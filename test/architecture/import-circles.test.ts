/**
 * src/ has no import circles (#25), type-only imports included: each module
 * can be read knowing only what it imports. A new circle fails here, naming
 * its modules; break it by moving the shared declaration to the module
 * both sides are about (a type to the model, an interface to its
 * implementation), never by a dynamic import.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { circles, importGraph } from './import-graph.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('the import graph of src/', () => {
  it('has no circle', () => {
    assert.deepEqual(circles(importGraph(ROOT)), [], 'import circles in src/');
  });

  it('finds a circle when there is one (the check can fail)', () => {
    const graph = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['c.ts']],
      ['c.ts', ['a.ts']],
      ['d.ts', ['d.ts']],
      ['e.ts', ['a.ts']],
    ]);
    assert.deepEqual(circles(graph), [['a.ts', 'b.ts', 'c.ts'], ['d.ts']]);
  });
});
