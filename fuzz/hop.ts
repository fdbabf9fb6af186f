/**
 * The hop target of `npm run fuzz`: the hop-level differential harness
 * (test/e2e/hop-differential.test.ts) run for longer, from a random
 * seed it prints (FUZZ_SEED runs one again). Batches of fast-check
 * mutations of the corpus (test/dataplane/hop/mutations.ts) go to every
 * origin lane side by side until the time is up. A case with findings is
 * written to fuzz/corpus/hop/<id>.json, where the differential test replays
 * it on every `npm test` until baton is fixed; its findings are printed,
 * tokens redacted.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REQUEST_CASES, type RequestCase } from '../test/dataplane/hop/corpus.ts';
import { type Harness, REQUEST_LANES, startHarness } from '../test/dataplane/hop/harness.ts';
import { mutatedCases } from '../test/dataplane/hop/mutations.ts';
import { type CaseResult, redact, runRequestCase } from '../test/dataplane/hop/run.ts';
import { CORPUS_DIR } from './corpus.ts';

export const HOP_CORPUS = join(CORPUS_DIR, 'hop');
const BATCH = 8;

export interface HopFuzzResult {
  readonly runs: number;
  readonly findings: number;
}

export async function fuzzHop(budgetMs: number, seed: number): Promise<HopFuzzResult> {
  let deadline = Date.now() + budgetMs;
  // Interrupted: finish the batch in hand and stop every process the harness started.
  const interrupt = (): void => {
    deadline = 0;
  };
  process.once('SIGINT', interrupt).once('SIGTERM', interrupt);
  const harness: Harness = await startHarness();
  let runs = 0;
  let findings = 0;
  try {
    for (let batch = 0; Date.now() < deadline; batch++) {
      const results = await Promise.all(
        REQUEST_LANES.map(async (name, index) => {
          const lane = harness.lanes[name];
          if (lane === undefined) throw new Error(`no lane ${name}`);
          const out: Array<{ testCase: RequestCase; result: CaseResult }> = [];
          // Each lane and batch draws from its own seed, so a finding names the seed that reproduces it.
          for (const testCase of mutatedCases(REQUEST_CASES, seed + batch * REQUEST_LANES.length + index, BATCH)) {
            if (Date.now() >= deadline) break;
            out.push({ testCase, result: await runRequestCase(lane, harness.mesh, harness.ports(name), testCase) });
          }
          return out;
        }),
      );
      for (const { testCase, result } of results.flat()) {
        runs++;
        if (result.findings.length === 0) continue;
        findings++;
        mkdirSync(HOP_CORPUS, { recursive: true });
        const file = join(HOP_CORPUS, `${testCase.id}.json`);
        writeFileSync(file, `${JSON.stringify({ ...testCase, lane: result.lane }, null, 2)}\n`);
        const text = result.findings
          .map((f) => `  [${f.lane} ${f.leg} connection ${f.connection}] ${f.text}`)
          .join('\n');
        console.log(redact(`hop: ${testCase.source}\n${text}\nsaved to ${file}`, harness.mesh.secrets()));
      }
    }
  } finally {
    await harness.stop();
    process.off('SIGINT', interrupt).off('SIGTERM', interrupt);
  }
  return { runs, findings };
}
