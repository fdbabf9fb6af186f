/**
 * Token exchanges per second and p99 latency of a real `baton sts`
 * process, against the cost of one bare jose ES256 sign + verify measured
 * in the same run (an exchange does one verify and one sign, plus client
 * authentication, policy and HTTP). Part of scenario 3 (exchange); run alone
 * with node_modules/.bin/node bench/sts.bench.ts, or by bench/run.ts.
 * Writes bench/results/sts.json and sts.md.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { performance } from 'node:perf_hooks';
import { exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { TOKEN_EXCHANGE_GRANT, TokenType } from '../src/core/token-types.ts';
import { freePort, listenOnLoopback } from '../test/helpers/net.ts';
import { baseConfig, basic, SECRETS, writeStsConfig } from '../test/helpers/sts.ts';
import { startProcess } from '../test/helpers/process.ts';
import { benchBundle } from './lib/bundle.ts';
import { runLoad } from './lib/load.ts';
import { writeResults } from './lib/report.ts';
import type { BenchOptions, ScenarioResult } from './lib/scenario.ts';

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number;
}

async function bareSignVerify(iterations: number): Promise<{ opsPerSecond: number; p50Ms: number; p99Ms: number }> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const claims = {
    sub: 'alice',
    aud: 'orders',
    client_id: 'gateway',
    scope: 'orders:read payments:charge',
    act: { sub: 'gateway' },
    txn: 'bench',
    sub_type: 'user',
    sub_id: { format: 'iss_sub', iss: 'https://idp.bench.test', sub: 'alice' },
  };
  const timings: number[] = [];
  const started = performance.now();
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    const now = Math.floor(Date.now() / 1000);
    const jwt = await new SignJWT({ ...claims, jti: randomUUID() })
      .setProtectedHeader({ alg: 'ES256', kid: 'k', typ: 'at+jwt' })
      .setIssuer('http://sts')
      .setIssuedAt(now)
      .setExpirationTime(now + 300)
      .sign(privateKey);
    await jwtVerify(jwt, publicKey, { issuer: 'http://sts', audience: 'orders', typ: 'at+jwt' });
    timings.push(performance.now() - t0);
  }
  const elapsed = (performance.now() - started) / 1000;
  timings.sort((a, b) => a - b);
  return { opsPerSecond: iterations / elapsed, p50Ms: percentile(timings, 0.5), p99Ms: percentile(timings, 0.99) };
}

export interface BenchSts {
  readonly url: string;
  /** A user token from the external IdP, addressed to the gateway (the STS's entrypoint). */
  userToken(sub?: string): Promise<string>;
  /** The gateway's exchange of a user token for orders, as a load request; checked once to answer 200. */
  gatewayExchange(): Promise<{ url: string; method: 'POST'; headers: Record<string, string>; body: string }>;
  stop(): Promise<void>;
}

/**
 * A real `baton sts` process with the STS tests' call graph, and an external IdP whose JWKS this process serves.
 * `clients` may rewrite the client list (e.g. to scrypt-hashed secrets).
 */
export async function startBenchSts(
  options: { clients?: (clients: Array<Record<string, unknown>>) => Promise<Array<Record<string, unknown>>> } = {},
): Promise<BenchSts> {
  const bundle = await benchBundle();
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'idp', alg: 'ES256' };
  const idpServer = createServer((_req, res) =>
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })),
  );
  await listenOnLoopback(idpServer);
  const idpPort = (idpServer.address() as { port: number }).port;
  const idpIssuer = `http://127.0.0.1:${idpPort}`;
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const raw = baseConfig({
    issuer: url,
    idp: { issuer: idpIssuer, jwksUri: `${idpIssuer}/jwks` },
    extra: { port, logLevel: 'warn' },
  });
  if (options.clients !== undefined) raw.clients = await options.clients(raw.clients as Array<Record<string, unknown>>);
  const config = writeStsConfig(raw);
  const sts = startProcess(process.execPath, [bundle.baton, 'sts', '--config', config.file], {
    BATON_LOG_LEVEL: 'info',
  });
  const stop = async (): Promise<void> => {
    await sts.stop();
    idpServer.close();
    config.remove();
  };
  try {
    await sts.waitForOutput(/"msg":"sts listening"/);
  } catch (error) {
    await stop();
    throw error;
  }
  const userToken = async (sub = 'alice'): Promise<string> => {
    const now = Math.floor(Date.now() / 1000);
    return await new SignJWT({
      sub,
      aud: 'gateway',
      scope: 'openid orders:read payments:charge ledger:write',
      client_id: 'web',
    })
      .setProtectedHeader({ alg: 'ES256', kid: 'idp', typ: 'at+jwt' })
      .setIssuer(idpIssuer)
      .setIssuedAt(now)
      .setExpirationTime(now + 3600)
      .setJti(randomUUID())
      .sign(privateKey);
  };
  return {
    url,
    userToken,
    async gatewayExchange() {
      const body = new URLSearchParams({
        grant_type: TOKEN_EXCHANGE_GRANT,
        subject_token: await userToken(),
        subject_token_type: TokenType.accessToken,
        audience: 'orders',
      }).toString();
      const request = {
        url: `${url}/token`,
        method: 'POST' as const,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: basic('gateway', SECRETS.gateway),
        },
        body,
      };
      const check = await fetch(request.url, { method: 'POST', headers: request.headers, body });
      if (check.status !== 200) throw new Error(`bench: the STS refused the gateway's exchange: ${check.status}`);
      return request;
    },
    stop,
  };
}

export async function run(options: BenchOptions): Promise<ScenarioResult> {
  const durationSec = options.quick ? 1 : 4;
  const sts = await startBenchSts();
  try {
    const request = await sts.gatewayExchange();
    await runLoad({ ...request, durationSec: 1, connections: 8 });

    const bare = await bareSignVerify(options.quick ? 300 : 3000);
    const saturated = await runLoad({ ...request, durationSec, connections: 32 });
    const sequential = await runLoad({ ...request, durationSec, connections: 1 });
    const atHalf = await runLoad({
      ...request,
      durationSec,
      connections: 16,
      rate: Math.max(100, Math.round(saturated.rps / 2)),
    });
    const rows = [
      {
        scenario: 'bare jose ES256 sign + verify (in process)',
        opsPerSecond: Math.round(bare.opsPerSecond),
        p50Ms: bare.p50Ms,
        p99Ms: bare.p99Ms,
        errors: 0,
      },
      {
        scenario: 'token exchange, 1 connection',
        opsPerSecond: Math.round(sequential.rps),
        p50Ms: sequential.p50Ms,
        p99Ms: sequential.p99Ms,
        errors: sequential.errors + sequential.non2xx,
      },
      {
        scenario: 'token exchange, 32 connections (saturated)',
        opsPerSecond: Math.round(saturated.rps),
        p50Ms: saturated.p50Ms,
        p99Ms: saturated.p99Ms,
        errors: saturated.errors + saturated.non2xx,
      },
      {
        scenario: 'token exchange, 16 connections at half the saturated rate',
        opsPerSecond: Math.round(atHalf.rps),
        p50Ms: atHalf.p50Ms,
        p99Ms: atHalf.p99Ms,
        errors: atHalf.errors + atHalf.non2xx,
      },
    ];
    const title = 'Scenario 3b — STS token exchanges per second vs bare JWT sign + verify';
    const checks = [
      {
        target: 'STS ≥ 1,500 exchanges/s on one core (one process)',
        measured: `${Math.round(saturated.rps)}/s`,
        met: saturated.rps >= 1500,
      },
    ];
    const markdown = writeResults('sts', title, rows, {
      durationSec,
      exchangeCostInSignVerifies: Number((bare.opsPerSecond / saturated.rps).toFixed(2)),
      checks,
      note: 'one STS process (one event loop); the load generator (autocannon, whole-millisecond latencies) runs in the bench process on the same machine',
    });
    return { name: 'sts', title, rows, checks, markdown };
  } finally {
    await sts.stop();
  }
}

if (import.meta.main) console.log((await run({ quick: process.env.BENCH_QUICK === '1' })).markdown);
