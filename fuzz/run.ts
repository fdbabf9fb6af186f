/**
 * `npm run fuzz`: fast-check at scale against the token pre-parser and the
 * policy parser, then the hop-level differential harness against real
 * processes (fuzz/hop.ts), for a bounded time (FUZZ_SECONDS, default 60,
 * split between the three). Inputs are mutations of the committed seed
 * corpus (fuzz/corpus/<target>/) and free-form strings, or for the hop
 * target mutations of its corpus from a random seed that is printed
 * (FUZZ_SEED to run one again); a failing input is written back into
 * fuzz/corpus/<target>/, where test/fuzz/corpus.test.ts (and, for the hop
 * target, test/e2e/hop-differential.test.ts) replays it on every
 * `npm test` until the bug is fixed.
 */
import { createHash, randomInt } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { CORPUS_DIR, readCorpus } from './corpus.ts';
import { fuzzHop } from './hop.ts';
import { type FuzzTarget, TARGETS } from './targets.ts';

const seconds = Number(process.env.FUZZ_SECONDS ?? 60);
if (!Number.isFinite(seconds) || seconds <= 0)
  throw new Error(`expected FUZZ_SECONDS to be a positive number, got ${process.env.FUZZ_SECONDS}`);

/** One mutation of a seed: splice, duplicate, truncate, flip a character, or insert a hostile fragment. */
function mutated(seeds: readonly string[]): fc.Arbitrary<string> {
  const fragments = [
    '.',
    '=',
    '"',
    '\\u0000',
    '{',
    '}',
    '[',
    ']',
    ':',
    ',',
    'eyJ',
    'null',
    '&a',
    '*a',
    '!!js/function',
    '\n  - ',
    '\t',
    '\u2028',
    'a'.repeat(300),
  ];
  return fc
    .tuple(
      fc.constantFrom(...seeds),
      fc.nat(),
      fc.nat(),
      fc.constantFrom(...fragments),
      fc.integer({ min: 0, max: 5 }),
      fc.string({ unit: 'binary', maxLength: 8 }),
    )
    .map(([seed, a, b, fragment, op, noise]) => {
      const i = seed.length === 0 ? 0 : a % seed.length;
      const j = seed.length === 0 ? 0 : b % seed.length;
      switch (op) {
        case 0:
          return seed.slice(0, i) + fragment + seed.slice(i);
        case 1:
          return seed.slice(0, Math.min(i, j)) + seed.slice(Math.max(i, j));
        case 2:
          return seed.slice(0, i) + seed.slice(Math.min(i, j), Math.max(i, j)) + seed.slice(i);
        case 3:
          return (
            seed.slice(0, i) + String.fromCharCode((seed.charCodeAt(i) ^ (1 << (b % 7))) & 0xffff) + seed.slice(i + 1)
          );
        case 4:
          return seed.slice(0, i) + noise + seed.slice(i);
        default:
          return seed.slice(0, i);
      }
    });
}

function inputs(seeds: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: mutated(seeds) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 400 }) },
    {
      weight: 1,
      arbitrary: fc
        .array(
          fc.base64String({ maxLength: 120 }).map((s) => s.replace(/\+/g, '-').replace(/\//g, '_')),
          { minLength: 1, maxLength: 4 },
        )
        .map((parts) => parts.join('.')),
    },
  );
}

function fuzz(target: FuzzTarget, budgetMs: number): { runs: number; failure?: string } {
  const seeds = readCorpus(target.name).map((entry) => entry.input);
  const deadline = Date.now() + budgetMs;
  let runs = 0;
  let failure: string | undefined;
  while (Date.now() < deadline && failure === undefined) {
    const result = fc.check(
      fc.property(inputs(seeds), (input) => {
        runs++;
        target.run(input);
      }),
      { numRuns: 2_000, endOnFailure: true },
    );
    if (result.failed && result.counterexample !== null) failure = result.counterexample[0];
  }
  return failure === undefined ? { runs } : { runs, failure };
}

// Three targets share the time: the two in-process parsers, then the hop harness.
const budget = (seconds * 1000) / (TARGETS.length + 1);
let failed = false;
for (const target of TARGETS) {
  const { runs, failure } = fuzz(target, budget);
  if (failure === undefined) {
    console.log(`${target.name}: ${runs} inputs, no findings`);
    continue;
  }
  failed = true;
  const dir = join(CORPUS_DIR, target.name);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `crash-${createHash('sha256').update(failure).digest('hex').slice(0, 16)}.txt`);
  writeFileSync(file, failure);
  let why = '';
  try {
    target.run(failure);
  } catch (error) {
    why = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  }
  console.log(`${target.name}: finding after ${runs} inputs (${why}); saved to ${file}`);
}
const seed = process.env.FUZZ_SEED === undefined ? randomInt(2 ** 31) : Number(process.env.FUZZ_SEED);
if (!Number.isSafeInteger(seed)) throw new Error(`expected FUZZ_SEED to be an integer, got ${process.env.FUZZ_SEED}`);
console.log(`hop: seed ${seed} (FUZZ_SEED=${seed} runs these mutations again)`);
const hop = await fuzzHop(budget, seed);
console.log(
  `hop: ${hop.runs} mutated cases across the origin lanes, ${hop.findings === 0 ? 'no findings' : `${hop.findings} finding(s), saved to fuzz/corpus/hop/`}`,
);
if (hop.findings > 0) failed = true;
process.exitCode = failed ? 1 : 0;
