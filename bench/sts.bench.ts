/**
 * Token exchanges per second and p99 latency of a real `baton sts`
 * process, against the cost of one bare jose ES256 sign + verify measured
 * in the same run (an exchange does one verify and one sign, plus client
 * authentication, policy and HTTP). Run: node_modules/.bin/node bench/sts.bench.ts
 * Writes bench/results/sts.json and sts.md and prints the markdown table.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { performance } from 'node:perf_hooks';
import { exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { TOKEN_EXCHANGE_GRANT, TokenType } from '../src/core/token-types.ts';
import { freePort } from '../test/helpers/net.ts';
import { startBaton } from '../test/helpers/process.ts';
import { baseConfig, basic, SECRETS, writeStsConfig } from '../test/sts/helpers/sts-fixture.ts';
import { runLoad } from './lib/load.ts';
import { writeResults } from './lib/report.ts';

const DURATION_SEC = Number(process.env.BENCH_DURATION_SEC ?? 10);

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number;
}

async function bareSignVerify(iterations: number): Promise<{ opsPerSecond: number; p50Ms: number; p99Ms: number }> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const claims = { sub: 'alice', aud: 'orders', client_id: 'gateway', scope: 'orders:read payments:charge', act: { sub: 'gateway' }, txn: 'bench', sub_type: 'user' };
  const timings: number[] = [];
  const started = performance.now();
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    const now = Math.floor(Date.now() / 1000);
    const jwt = await new SignJWT({ ...claims, jti: randomUUID() }).setProtectedHeader({ alg: 'ES256', kid: 'k', typ: 'at+jwt' }).setIssuer('http://sts').setIssuedAt(now).setExpirationTime(now + 300).sign(privateKey);
    await jwtVerify(jwt, publicKey, { issuer: 'http://sts', audience: 'orders', typ: 'at+jwt' });
    timings.push(performance.now() - t0);
  }
  const elapsed = (performance.now() - started) / 1000;
  timings.sort((a, b) => a - b);
  return { opsPerSecond: iterations / elapsed, p50Ms: percentile(timings, 0.5), p99Ms: percentile(timings, 0.99) };
}

async function main(): Promise<void> {
  // An external IdP: only its JWKS is needed, served from this process.
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'idp', alg: 'ES256' };
  const idpServer = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })));
  await new Promise<void>((resolve) => idpServer.listen(0, '127.0.0.1', resolve));
  const idpPort = (idpServer.address() as { port: number }).port;
  const idpIssuer = `http://127.0.0.1:${idpPort}`;
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const config = writeStsConfig(baseConfig({ issuer: url, idp: { issuer: idpIssuer, jwksUri: `${idpIssuer}/jwks` }, extra: { port, logLevel: 'warn' } }));
  const sts = startBaton(['sts', '--config', config.file], { BATON_LOG_LEVEL: 'info' });
  try {
    await sts.waitForOutput(/"msg":"sts listening"/);
    const now = Math.floor(Date.now() / 1000);
    const userToken = await new SignJWT({ sub: 'alice', aud: 'gateway', scope: 'openid orders:read payments:charge ledger:write', client_id: 'web' })
      .setProtectedHeader({ alg: 'ES256', kid: 'idp', typ: 'at+jwt' })
      .setIssuer(idpIssuer)
      .setIssuedAt(now)
      .setExpirationTime(now + 3600)
      .setJti(randomUUID())
      .sign(privateKey);
    const body = new URLSearchParams({ grant_type: TOKEN_EXCHANGE_GRANT, subject_token: userToken, subject_token_type: TokenType.accessToken, audience: 'orders' }).toString();
    const request = { url: `${url}/token`, method: 'POST' as const, headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic('gateway', SECRETS.gateway) }, body };
    const check = await fetch(request.url, { method: 'POST', headers: request.headers, body });
    if (check.status !== 200) throw new Error(`bench: the STS refused the exchange: ${check.status} ${await check.text()}`);
    await runLoad({ ...request, durationSec: 2, connections: 8 });

    const bare = await bareSignVerify(3000);
    const saturated = await runLoad({ ...request, durationSec: DURATION_SEC, connections: 32 });
    const sequential = await runLoad({ ...request, durationSec: DURATION_SEC, connections: 1 });
    const atHalf = await runLoad({ ...request, durationSec: DURATION_SEC, connections: 16, rate: Math.max(100, Math.round(saturated.rps / 2)) });
    const rows = [
      { scenario: 'bare jose ES256 sign + verify (in process)', opsPerSecond: Math.round(bare.opsPerSecond), p50Ms: bare.p50Ms, p99Ms: bare.p99Ms, errors: 0 },
      { scenario: 'token exchange, 1 connection', opsPerSecond: Math.round(sequential.rps), p50Ms: sequential.p50Ms, p99Ms: sequential.p99Ms, errors: sequential.errors + sequential.non2xx },
      { scenario: 'token exchange, 32 connections (saturated)', opsPerSecond: Math.round(saturated.rps), p50Ms: saturated.p50Ms, p99Ms: saturated.p99Ms, errors: saturated.errors + saturated.non2xx },
      { scenario: 'token exchange, 16 connections at half the saturated rate', opsPerSecond: Math.round(atHalf.rps), p50Ms: atHalf.p50Ms, p99Ms: atHalf.p99Ms, errors: atHalf.errors + atHalf.non2xx },
    ];
    const md = writeResults('sts', 'STS token exchange vs bare JWT sign + verify', rows, {
      durationSec: DURATION_SEC,
      exchangeCostInSignVerifies: Number((bare.opsPerSecond / saturated.rps).toFixed(2)),
      note: 'one STS process (one event loop); the load generator runs in the bench process on the same machine',
    });
    console.log(md);
    console.log(`One exchange costs about ${(bare.opsPerSecond / saturated.rps).toFixed(2)} bare sign+verify pairs at saturation.`);
  } finally {
    await sts.stop();
    idpServer.close();
    config.remove();
  }
}

await main();
