/**
 * The fuzz corpus as regression tests: every committed input (seeds and any
 * finding `npm run fuzz` saved) must pass its target, quickly, on every run.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { readCorpus } from '../../fuzz/corpus.ts';
import { TARGETS } from '../../fuzz/targets.ts';

describe('fuzz corpus', () => {
  for (const target of TARGETS) {
    it(`${target.name}: every committed input is refused with a typed error or accepted as promised`, () => {
      const corpus = readCorpus(target.name);
      assert.ok(corpus.length >= 5, `expected a seed corpus for ${target.name}`);
      for (const { name, input } of corpus) {
        const started = performance.now();
        assert.doesNotThrow(() => target.run(input), `${target.name}/${name}`);
        assert.ok(performance.now() - started < 1_000, `${target.name}/${name} took too long`);
      }
    });

    it(`${target.name}: a short fast-check run over arbitrary strings finds nothing`, () => {
      fc.assert(
        fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (input) => target.run(input)),
        { numRuns: 300 },
      );
    });
  }
});
