/**
 * `npm run soak`: the three-hop demo mesh (startMesh, with a real Redis)
 * under a steady ~1,000 requests/s for SOAK_SECONDS (default 60), with 100
 * policy reloads, a Redis restart and an STS restart in the middle. Two
 * streams: checkouts the policy allows (gateway → orders → payments) and
 * direct charges it denies (gateway → payments). A fail-open is a denied
 * request that reached the payments app; it must be 0. Prints a table and
 * writes bench/results/soak.json.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { DEMO_POLICY, DEMO_SERVICES, type Mesh, startMesh } from '../src/demo/mesh.ts';
import { DEMO_USER } from '../src/demo/scenario.ts';
import { type RunningProcess, startProcess } from '../test/helpers/process.ts';
import { type RedisServer, startRedis, writeMeshRedisSecrets } from '../test/helpers/redis.ts';
import { benchBundle, IMAGE_NODE_OPTIONS } from './lib/bundle.ts';

const seconds = Number(process.env.SOAK_SECONDS ?? 60);
const rate = Number(process.env.SOAK_RATE ?? 1000);
const maxInflight = 512;
// The young-generation cap docs/performance.md recommends for sidecar containers; SOAK_NODE_OPTIONS='' measures V8's default.
const nodeOptions = process.env.SOAK_NODE_OPTIONS ?? IMAGE_NODE_OPTIONS;
const RESULTS = fileURLToPath(new URL('./results/soak.json', import.meta.url));
// RSS may grow while caches fill; more than this per process over the run is reported as growth.
const RSS_GROWTH_BOUND_MB = 64;

interface Counts {
  sent: number;
  ok: number;
  failed: number;
  failOpen: number;
  skipped: number;
  statuses: Record<string, number>;
}

function rssMb(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 102.4) / 10;
  } catch {
    return 0;
  }
}

async function main(): Promise<void> {
  const { baton } = await benchBundle();
  const redisSecrets = await writeMeshRedisSecrets(DEMO_SERVICES);
  const redis: { server: RedisServer } = { server: await startRedis({ aclFile: redisSecrets.aclFile }) };
  // One demo user from one load generator: the per-user and per-peer shares of maxConcurrent would throttle the generator itself.
  const fairShareOff = {
    BATON_INBOUND__PEER_SHARE: '1',
    BATON_INBOUND__SUBJECT_SHARE: '1',
    BATON_OUTBOUND__SUBJECT_SHARE: '1',
  };
  // Plaintext: the soak exercises the shared Redis token cache, which mtls mode does not use (startMesh defaults to mTLS since #14).
  const mesh: Mesh = await startMesh({
    redis: { url: redis.server.url, secretsDir: redisSecrets.dir },
    env: { NODE_OPTIONS: nodeOptions, ...fairShareOff },
    entry: baton,
    transport: 'plaintext',
  });
  let sts: RunningProcess | undefined;
  const names = mesh.processes.map((p) => p.name).filter((n) => n !== 'idp');
  const pidOf = (name: string): number | undefined =>
    name === 'sts' && sts !== undefined ? sts.child.pid : mesh.process(name).child.pid;
  // "Start" is after a warm-up at full rate (40% of the run), so the bound
  // measures growth under steady load, not V8 sizing its young generation,
  // which takes about 15k requests to plateau (docs/security.md, Soak).
  let rssStart: Record<string, number> = {};
  setTimeout(() => (rssStart = Object.fromEntries(names.map((n) => [n, rssMb(pidOf(n))]))), seconds * 400).unref();
  const pool = new Pool(`http://127.0.0.1:${mesh.services.gateway.inbound}`, { connections: 64, pipelining: 1 });
  const allowed: Counts = { sent: 0, ok: 0, failed: 0, failOpen: 0, skipped: 0, statuses: {} };
  const denied: Counts = { sent: 0, ok: 0, failed: 0, failOpen: 0, skipped: 0, statuses: {} };
  let token = await mesh.userToken(DEMO_USER);
  let inflight = 0;
  const events: Array<{ atSeconds: number; event: string }> = [];
  const started = Date.now();
  const at = (): number => Math.round((Date.now() - started) / 100) / 10;

  async function one(deny: boolean): Promise<void> {
    const counts = deny ? denied : allowed;
    if (inflight >= maxInflight) {
      counts.skipped++;
      return;
    }
    inflight++;
    counts.sent++;
    let key = 'error';
    try {
      const r = await pool.request({
        path: deny ? '/direct-charge' : '/checkout',
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
        headersTimeout: 10_000,
        bodyTimeout: 10_000,
      });
      const text = await r.body.text();
      const body = (text.startsWith('{') ? JSON.parse(text) : {}) as {
        downstream?: { status?: number; body?: { code?: string; downstream?: { status?: number } } };
      };
      const first = body.downstream?.status;
      const second = body.downstream?.body?.downstream?.status;
      key = `${r.statusCode}/${first ?? '-'}/${second ?? body.downstream?.body?.code ?? '-'}`;
      if (deny) {
        // The gateway app answers with its refused call's status; that call straight to payments must have been refused by the gateway sidecar.
        if (first !== undefined && first < 400) counts.failOpen++;
        if (r.statusCode === 403 && first === 403) counts.ok++;
        else counts.failed++;
      } else if (r.statusCode === 200 && first === 200 && second === 200) counts.ok++;
      else counts.failed++;
    } catch (error) {
      key = (error as { code?: string }).code ?? 'error';
      counts.failed++;
    } finally {
      inflight--;
      counts.statuses[key] = (counts.statuses[key] ?? 0) + 1;
    }
  }

  const basePolicy = readFileSync(DEMO_POLICY, 'utf8');
  const policyFile = join(mesh.dir, 'callgraph.yaml');
  const durationMs = seconds * 1000;
  const reloads = 100;
  let reloaded = 0;
  const work: Array<Promise<void>> = [];
  const chaos = (async () => {
    const tick = durationMs / (reloads + 1);
    for (let i = 1; i <= reloads; i++) {
      await sleepUntil(started + i * tick);
      writeFileSync(policyFile, basePolicy.replace(/description: batch job[^\n]*/, `description: soak reload ${i}`));
      reloaded++;
      if (i === Math.round(reloads * 0.4)) {
        events.push({ atSeconds: at(), event: 'redis restart' });
        work.push(
          redis.server.restart().then((next) => {
            redis.server = next;
            events.push({ atSeconds: at(), event: 'redis back' });
          }),
        );
      }
      if (i === Math.round(reloads * 0.6)) {
        events.push({ atSeconds: at(), event: 'sts restart' });
        work.push(
          (async () => {
            const old = sts?.child ?? mesh.process('sts').child;
            const exited = new Promise((resolve) =>
              old.exitCode !== null ? resolve(undefined) : old.once('exit', resolve),
            );
            old.kill('SIGTERM');
            await exited;
            sts = startProcess(process.execPath, [baton, 'sts', '--config', join(mesh.dir, 'sts.yaml')], {
              NODE_OPTIONS: nodeOptions,
            });
            await sts.waitForOutput(/"msg":"sts listening"/, 30_000);
            events.push({ atSeconds: at(), event: 'sts back' });
          })(),
        );
      }
      if (i % 20 === 0) token = await mesh.userToken(DEMO_USER);
    }
  })();

  // Constant rate: every 10 ms, the requests due since the start; one in ten is a denied direct charge.
  let issued = 0;
  while (Date.now() - started < durationMs) {
    const due = Math.floor(((Date.now() - started) / 1000) * rate);
    for (; issued < due; issued++) work.push(one(issued % 10 === 9));
    await new Promise((resolve) => setTimeout(resolve, 10));
    // one() never rejects (it counts its own errors): the calls dropped here settle on their own.
    if (work.length > 20_000) void work.splice(0, work.length - 1_000);
  }
  await chaos;
  await Promise.allSettled(work);
  await new Promise((resolve) => setTimeout(resolve, 500));
  const rssEnd = Object.fromEntries(names.map((n) => [n, rssMb(pidOf(n))]));
  const elapsed = (Date.now() - started) / 1000;
  await pool.close();
  await sts?.stop();
  await mesh.stop();
  await redis.server.stop();
  redisSecrets.remove();

  const processes = names.map((n) => ({
    name: n,
    rssStartMb: rssStart[n] ?? 0,
    rssEndMb: rssEnd[n] ?? 0,
    growthMb: Math.round(((rssEnd[n] ?? 0) - (rssStart[n] ?? 0)) * 10) / 10,
  }));
  const result = {
    date: new Date().toISOString(),
    node: process.version,
    nodeOptions,
    seconds: Math.round(elapsed),
    targetRate: rate,
    achievedRate: Math.round((allowed.sent + denied.sent) / elapsed),
    policyReloads: reloaded,
    events,
    allowed,
    denied,
    failOpen: allowed.failOpen + denied.failOpen,
    rssGrowthBoundMb: RSS_GROWTH_BOUND_MB,
    // The STS was replaced mid-run: its "start" is the old process, its "end" the new one.
    processes,
    rssWithinBound: processes.filter((p) => p.name !== 'sts').every((p) => p.growthMb <= RSS_GROWTH_BOUND_MB),
  };
  writeFileSync(RESULTS, JSON.stringify(result, null, 2) + '\n');
  console.log(
    `soak: ${result.seconds} s at ${result.achievedRate} req/s (target ${rate}), ${reloaded} policy reloads, events: ${events.map((e) => `${e.event}@${e.atSeconds}s`).join(', ')}`,
  );
  console.log('stream    sent    ok      failed  skipped fail-open');
  for (const [name, c] of [
    ['allowed', allowed],
    ['denied', denied],
  ] as const) {
    console.log(
      `${name.padEnd(9)} ${String(c.sent).padEnd(7)} ${String(c.ok).padEnd(7)} ${String(c.failed).padEnd(7)} ${String(c.skipped).padEnd(7)} ${c.failOpen}`,
    );
  }
  console.log('process            rss start MB  rss end MB  growth MB');
  for (const p of processes)
    console.log(
      `${p.name.padEnd(18)} ${String(p.rssStartMb).padEnd(13)} ${String(p.rssEndMb).padEnd(11)} ${p.growthMb}`,
    );
  console.log(`statuses: allowed ${JSON.stringify(allowed.statuses)} denied ${JSON.stringify(denied.statuses)}`);
  console.log(`written to ${RESULTS}`);
  if (result.failOpen > 0 || !result.rssWithinBound) process.exitCode = 1;
}

async function sleepUntil(when: number): Promise<void> {
  const wait = when - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
}

await main();
