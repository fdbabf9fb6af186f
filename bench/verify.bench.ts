/**
 * Scenario 2, verification: what the inbound sidecar does per request
 * before the app sees it — verify the token (RFC 9068 checks) and check its
 * act chain against the call-graph policy — uncached and from the verified
 * token cache, against bare `jose.jwtVerify` with the same key and algorithm,
 * in one process, one after another, several rounds.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { compilePolicy } from '../src/policy/language/compile.ts';
import type { CompiledPolicy, DecisionInput } from '../src/policy/language/decision.ts';
import { parsePolicy } from '../src/policy/language/parse.ts';
import { createLocalKeySource } from '../src/token/key-source.ts';
import { createVerifiedTokenCache } from '../src/token/verified-cache.ts';
import { createAccessTokenVerifier } from '../src/token/verifier.ts';
import { BENCH_POLICY } from './hop.bench.ts';
import { median, type Row, writeResults } from './lib/report.ts';
import { type BenchOptions, type Check, ratio, type ScenarioResult } from './lib/scenario.ts';

const ISSUER = 'http://sts.bench';
const ALGORITHMS = ['ES256', 'EdDSA', 'RS256'] as const;
type PublicKey = Awaited<ReturnType<typeof generateKeyPair>>['publicKey'];

type Op = () => Promise<unknown> | unknown;
const BATCH = 50;

/**
 * Operations per second of operations of similar cost, measured
 * interleaved: batches of 50 calls take turns until each operation has run
 * for about `ms` milliseconds, so drift on a shared machine (a neighbour's
 * burst, a frequency change) lands on every operation alike instead of on
 * whichever ran during it.
 */
async function interleavedOpsPerSecond(ms: number, ops: readonly Op[]): Promise<number[]> {
  const elapsed = ops.map(() => 0);
  const calls = ops.map(() => 0);
  while (elapsed.some((e) => e < ms)) {
    for (const [i, op] of ops.entries()) {
      const started = performance.now();
      for (let n = 0; n < BATCH; n++) await op();
      elapsed[i] = (elapsed[i] as number) + performance.now() - started;
      calls[i] = (calls[i] as number) + BATCH;
    }
  }
  return calls.map((n, i) => n / ((elapsed[i] as number) / 1000));
}

export function loadBenchPolicy(): CompiledPolicy {
  const parsed = parsePolicy(readFileSync(BENCH_POLICY, 'utf8'), BENCH_POLICY);
  if (parsed.policy === undefined)
    throw new Error(`bench: the bench policy does not parse: ${JSON.stringify(parsed.problems.slice(0, 3))}`);
  return compilePolicy(parsed.policy);
}

/** A mesh token for payments: alice, through gateway then orders, as the STS would mint it. */
async function meshToken(alg: string): Promise<{ token: string; jwks: { keys: object[] }; publicKey: PublicKey }> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const now = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({
    sub_type: 'user',
    sub_id: { format: 'iss_sub', iss: 'https://idp.bench.test', sub: 'alice' },
    client_id: 'orders',
    scope: 'payments:charge fido',
    act: { sub: 'orders', act: { sub: 'gateway' } },
    txn: randomUUID(),
  })
    .setProtectedHeader({ alg, kid: 'k1', typ: 'at+jwt' })
    .setIssuer(ISSUER)
    .setSubject('alice')
    .setAudience('payments')
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .setJti(randomUUID())
    .sign(privateKey);
  return { token, jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg, use: 'sig' }] }, publicKey };
}

export async function run(options: BenchOptions): Promise<ScenarioResult> {
  const rounds = options.quick ? 1 : 3;
  const ms = options.quick ? 150 : 700;
  const policy = loadBenchPolicy();
  const rows: Row[] = [];
  const checks: Check[] = [];
  for (const alg of ALGORITHMS) {
    const { token, jwks, publicKey } = await meshToken(alg);
    const verifier = createAccessTokenVerifier({
      issuers: [{ issuer: ISSUER, keys: createLocalKeySource(jwks as never), kind: 'mesh' }],
      algorithms: [alg],
      maxActDepth: 16,
    });
    const cache = createVerifiedTokenCache({ max: 10_000 });
    const decide = (chain: readonly string[], scopes: ReadonlySet<string>, user: boolean): void => {
      const input: DecisionInput = { chain, target: 'payments', method: 'POST', path: '/charges', scopes, user };
      if (!policy.decide(input).allowed) throw new Error('bench: the chain check should allow this call');
    };
    const bare = async (): Promise<void> => {
      await jwtVerify(token, publicKey, { issuer: ISSUER, audience: 'payments', typ: 'at+jwt', algorithms: [alg] });
    };
    const uncached = async (): Promise<void> => {
      const verified = await verifier.verify(token, { audience: 'payments' });
      decide(verified.chain, verified.scopes, verified.user);
    };
    // The inbound path: the cache first, the verifier only on a miss (here: the first call).
    const cached = async (): Promise<void> => {
      let verified = cache.get(token, 'payments');
      if (verified === undefined) {
        verified = await verifier.verify(token, { audience: 'payments' });
        cache.set(token, 'payments', verified);
      }
      decide(verified.chain, verified.scopes, verified.user);
    };
    await interleavedOpsPerSecond(50, [bare, uncached]);
    await interleavedOpsPerSecond(50, [cached]);
    const results = { bare: [] as number[], uncached: [] as number[], cached: [] as number[] };
    for (let r = 0; r < rounds; r++) {
      // bare and uncached both verify a signature; the cached path is ~100x faster and would only wait its turn, so it runs alone.
      const [bareOps, uncachedOps] = (await interleavedOpsPerSecond(ms, [bare, uncached])) as [number, number];
      const [cachedOps] = (await interleavedOpsPerSecond(ms, [cached])) as [number];
      results.bare.push(bareOps);
      results.uncached.push(uncachedOps);
      results.cached.push(cachedOps);
    }
    const bareOps = median(results.bare);
    const uncachedOps = median(results.uncached);
    const cachedOps = median(results.cached);
    rows.push(
      { alg, path: 'bare jose.jwtVerify', 'ops/s': Math.round(bareOps), '× bare': 1 },
      {
        alg,
        path: 'baton verify + chain check, uncached',
        'ops/s': Math.round(uncachedOps),
        '× bare': ratio(uncachedOps, bareOps),
      },
      {
        alg,
        path: 'baton verify + chain check, cached',
        'ops/s': Math.round(cachedOps),
        '× bare': ratio(cachedOps, bareOps),
      },
    );
    checks.push(
      {
        target: `${alg}: cached verification ≥ 20× bare jose verify`,
        measured: `${ratio(cachedOps, bareOps)}×`,
        met: cachedOps >= 20 * bareOps,
      },
      {
        target: `${alg}: uncached verification ≥ 0.8× bare jose verify`,
        measured: `${ratio(uncachedOps, bareOps)}×`,
        met: uncachedOps >= 0.8 * bareOps,
      },
    );
  }
  const title = 'Scenario 2 — inbound verification + chain check vs bare jose.jwtVerify';
  const markdown = writeResults('verify', title, rows, { rounds, msPerMeasurement: ms, checks });
  return { name: 'verify', title, rows, checks, markdown };
}

if (import.meta.main) console.log((await run({ quick: process.env.BENCH_QUICK === '1' })).markdown);
