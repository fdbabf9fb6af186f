import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { BATON_VERSION } from '../../src/core/version.ts';
import { DEMO_SERVICES, type Mesh, startMesh } from '../../src/demo/mesh.ts';
import { DEMO_USER, postInbound, runScenarios, type ScenarioResult } from '../../src/demo/scenario.ts';
import { freePort, waitFor } from '../helpers/net.ts';
import { PolicyDeniedError } from '../../src/policy/language/errors.ts';
import { UnauthenticatedError } from '../../src/sidecar/errors.ts';

/** One sample of a scrape: `name{labels} value`. */
interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A scrape, parsed: its samples and the families its TYPE lines declare (a family may have no sample yet). */
interface Scrape {
  readonly text: string;
  readonly samples: readonly Sample[];
  readonly families: ReadonlyMap<string, string>;
}

function parseScrape(text: string): Scrape {
  const samples: Sample[] = [];
  const families = new Map<string, string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type !== null) families.set(type[1] as string, type[2] as string);
    const sample = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (line.startsWith('#') || sample === null) continue;
    const labels: Record<string, string> = {};
    for (const m of (sample[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[m[1] as string] = m[2] as string;
    samples.push({ name: sample[1] as string, labels, value: Number(sample[3]) });
  }
  return { text, samples, families };
}

async function scrape(url: string): Promise<Scrape> {
  const response = await request(url);
  const text = await response.body.text();
  assert.equal(response.statusCode, 200, url);
  return parseScrape(text);
}

/** The value of the one sample with exactly these labels, or undefined. */
function valueOf(s: Scrape, name: string, labels: Record<string, string>): number | undefined {
  const found = s.samples.filter(
    (x) =>
      x.name === name &&
      Object.keys(x.labels).length === Object.keys(labels).length &&
      Object.entries(labels).every(([k, v]) => x.labels[k] === v),
  );
  assert.ok(found.length <= 1, `one series ${name}${JSON.stringify(labels)}`);
  return found[0]?.value;
}

/** Every name a sample can have: the samples seen, and each declared family with its histogram suffixes. */
function knownNames(scrapes: readonly Scrape[]): Set<string> {
  const names = new Set<string>();
  for (const s of scrapes) {
    for (const sample of s.samples) names.add(sample.name);
    for (const [family, type] of s.families) {
      names.add(family);
      if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(family + suffix);
    }
  }
  return names;
}

interface Dashboard {
  readonly title: string;
  readonly panels: ReadonlyArray<{ title: string; type: string; targets?: ReadonlyArray<{ expr: string }> }>;
  readonly templating: { list: ReadonlyArray<{ name: string; type: string; query?: { query?: string } | string }> };
}

const DASHBOARDS = { sidecar: 'deploy/grafana/baton-sidecar.json', sts: 'deploy/grafana/baton-sts.json' } as const;

function loadDashboard(path: string): Dashboard {
  return JSON.parse(readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8')) as Dashboard;
}

/** Every PromQL expression of a dashboard: panel targets and variable queries. */
function expressions(dashboard: Dashboard): Array<{ where: string; expr: string }> {
  const out: Array<{ where: string; expr: string }> = [];
  for (const panel of dashboard.panels)
    for (const target of panel.targets ?? [])
      out.push({ where: `${dashboard.title} / ${panel.title}`, expr: target.expr });
  for (const variable of dashboard.templating.list) {
    if (variable.type !== 'query') continue;
    const query = typeof variable.query === 'string' ? variable.query : (variable.query?.query ?? '');
    out.push({ where: `${dashboard.title} / $${variable.name}`, expr: query });
  }
  return out;
}

/** The expression Grafana would send for a range of a few minutes, with every service selected. */
function asGrafanaSends(expr: string): string {
  return expr.replaceAll('$__rate_interval', '1m').replaceAll('$service', '.*');
}

const METRIC = /\b((?:baton|process|nodejs)_[a-z0-9_]+)\b/g;
// Labels Prometheus adds from the scrape target, never in /metrics itself.
const TARGET_LABELS = new Set(['job', 'instance']);

describe('metrics of a running mesh (real sidecars, STS, policy server and Prometheus on loopback)', () => {
  let mesh: Mesh | undefined;
  let results: ScenarioResult[];
  let gateway: Scrape;
  let sidecars: Scrape[];
  let sts: Scrape;
  let policyServer: Scrape;
  let gatewayAdmin = 0;
  let stsAdminUrl = '';
  let policyAdminUrl = '';

  before(async () => {
    // mTLS, as shipped: Prometheus scrapes the STS and the policy server on their plaintext admin ports,
    // with no CA, no client certificate and no insecure_skip_verify.
    mesh = await startMesh();
    results = await runScenarios(mesh);
    const authorization = `Bearer ${await mesh.userToken(DEMO_USER)}`;
    // Twice with one token: every exchange of the second call is a cache hit.
    for (let i = 0; i < 2; i++)
      assert.equal((await postInbound(mesh.services.gateway.entry, '/checkout', authorization)).status, 200);
    // No token: refused by the gateway's sidecar itself.
    assert.equal((await postInbound(mesh.services.gateway.entry, '/checkout', '')).status, 401);
    gatewayAdmin = mesh.services.gateway.admin;
    stsAdminUrl = mesh.stsAdminUrl;
    policyAdminUrl = mesh.policyAdminUrl;
    sidecars = await Promise.all(
      DEMO_SERVICES.map((name) => scrape(`http://127.0.0.1:${mesh?.services[name].admin}/metrics`)),
    );
    gateway = sidecars[0] as Scrape;
    sts = await scrape(`${stsAdminUrl}/metrics`);
    policyServer = await scrape(`${policyAdminUrl}/metrics`);
  });
  after(async () => {
    await mesh?.stop();
  });

  it('drives the allowed and the denied chain', () => {
    assert.deepEqual(
      results.map((r) => [r.name, r.passed]),
      [
        ['allowed', true],
        ['denied', true],
      ],
    );
  });

  it('records at the STS how long each token request took, not 0', () => {
    const count = valueOf(sts, 'baton_sts_token_request_duration_seconds_count', { grant: 'token_exchange' }) ?? 0;
    const sum = valueOf(sts, 'baton_sts_token_request_duration_seconds_sum', { grant: 'token_exchange' }) ?? 0;
    // gateway → orders and orders → payments, each verified, policy-checked and signed: real work, real time.
    assert.ok(count >= 2, `count ${count}`);
    assert.ok(sum > 0, `the exchanges took time, the histogram says ${sum} s`);
    assert.ok(
      valueOf(sts, 'baton_sts_token_request_duration_seconds_bucket', { grant: 'token_exchange', le: '+Inf' }) ===
        count,
    );
  });

  it('counts sidecar requests by direction, target, status code and reason', () => {
    assert.ok(
      (valueOf(gateway, 'baton_requests_total', {
        direction: 'outbound',
        target: 'orders',
        code: '200',
        reason: 'forwarded',
      }) ?? 0) >= 2,
    );
    assert.equal(
      valueOf(gateway, 'baton_requests_total', {
        direction: 'outbound',
        target: 'payments',
        code: '403',
        reason: PolicyDeniedError.code,
      }),
      1,
    );
    assert.equal(
      valueOf(gateway, 'baton_requests_total', {
        direction: 'inbound',
        target: 'gateway',
        code: '401',
        reason: UnauthenticatedError.code,
      }),
      1,
    );
    // The share of 5xx is one query now that the status is a label of its own.
    assert.ok(
      gateway.samples
        .filter((s) => s.name === 'baton_requests_total')
        .every(
          (s) =>
            /^[1-5]\d\d$/.test(s.labels.code ?? '') && s.labels.reason !== undefined && s.labels.outcome === undefined,
        ),
    );
  });

  it('times every sidecar request in a histogram whose count is the request counter', () => {
    for (const labels of [
      { direction: 'inbound', target: 'gateway', code: '200', reason: 'forwarded' },
      { direction: 'outbound', target: 'orders', code: '200', reason: 'forwarded' },
      { direction: 'outbound', target: 'payments', code: '403', reason: PolicyDeniedError.code },
    ]) {
      const count = valueOf(gateway, 'baton_request_duration_seconds_count', labels);
      assert.equal(count, valueOf(gateway, 'baton_requests_total', labels), JSON.stringify(labels));
      assert.equal(valueOf(gateway, 'baton_request_duration_seconds_bucket', { ...labels, le: '+Inf' }), count);
      assert.ok((valueOf(gateway, 'baton_request_duration_seconds_sum', labels) ?? 0) > 0, JSON.stringify(labels));
    }
    // The orders hop includes the payments hop behind it: the gateway's outbound call takes longer than orders' inbound app time alone.
    const orders = sidecars[1] as Scrape;
    assert.ok(
      (valueOf(orders, 'baton_request_duration_seconds_count', {
        direction: 'outbound',
        target: 'payments',
        code: '200',
        reason: 'forwarded',
      }) ?? 0) >= 2,
    );
  });

  it('times STS round trips apart from cache hits', () => {
    const misses = valueOf(gateway, 'baton_exchange_duration_seconds_count', { result: 'miss' }) ?? 0;
    const hits = valueOf(gateway, 'baton_exchange_duration_seconds_count', { result: 'hit' }) ?? 0;
    assert.ok(misses >= 1 && hits >= 1, `misses ${misses}, hits ${hits}`);
    const missMean = (valueOf(gateway, 'baton_exchange_duration_seconds_sum', { result: 'miss' }) ?? 0) / misses;
    const hitMean = (valueOf(gateway, 'baton_exchange_duration_seconds_sum', { result: 'hit' }) ?? 0) / hits;
    assert.ok(missMean > hitMean, `an STS round trip (${missMean} s) takes longer than a cache hit (${hitMean} s)`);
    assert.equal(valueOf(gateway, 'baton_token_cache_requests_total', { result: 'miss' }), misses);
  });

  it('serves process_*, nodejs_* and baton_build_info from every sidecar, the STS and the policy server, all passing promtool', () => {
    for (const [name, s] of [
      ['gateway', gateway],
      ['sts', sts],
      ['policy-server', policyServer],
    ] as const) {
      for (const family of [
        'process_cpu_seconds_total',
        'process_resident_memory_bytes',
        'process_open_fds',
        'process_start_time_seconds',
        'nodejs_eventloop_lag_p99_seconds',
        'nodejs_heap_size_used_bytes',
        'nodejs_version_info',
      ]) {
        assert.ok(
          s.samples.some((x) => x.name === family),
          `${name} serves ${family}`,
        );
      }
      const checked = spawnSync('promtool', ['check', 'metrics'], { input: s.text, encoding: 'utf8', timeout: 10_000 });
      if (checked.error !== undefined)
        throw new Error(`promtool is required for this test (apt-get install prometheus): ${checked.error.message}`);
      assert.equal(checked.status, 0, `${name}: ${checked.stdout}${checked.stderr}`);
    }
    assert.equal(
      valueOf(gateway, 'baton_build_info', {
        version: BATON_VERSION,
        component: 'sidecar',
        service: 'gateway',
        nodejs_version: process.versions.node,
      }),
      1,
    );
    assert.equal(
      valueOf(sts, 'baton_build_info', {
        version: BATON_VERSION,
        component: 'sts',
        service: 'baton-sts',
        nodejs_version: process.versions.node,
      }),
      1,
    );
    assert.equal(
      valueOf(policyServer, 'baton_build_info', {
        version: BATON_VERSION,
        component: 'policy-server',
        service: 'baton-policy-server',
        nodejs_version: process.versions.node,
      }),
      1,
    );
  });

  it("serves the policy server's readiness, the version it publishes and when it was signed", () => {
    assert.equal(valueOf(policyServer, 'baton_ready', {}), 1);
    assert.ok((valueOf(policyServer, 'baton_policy_version', {}) ?? 0) >= 1);
    const issuedAt = valueOf(policyServer, 'baton_policy_issued_at_timestamp_seconds', {}) ?? 0;
    assert.ok(Math.abs(issuedAt - Date.now() / 1000) < 600, `signed ${issuedAt}`);
    // The sidecars and the STS each hold a long poll.
    assert.ok((valueOf(policyServer, 'baton_policy_long_polls', {}) ?? 0) >= 1);
  });

  it("answers only /livez, /readyz and /metrics on the STS's and the policy server's admin ports, the same as their TLS ports", async () => {
    for (const base of [stsAdminUrl, policyAdminUrl]) {
      for (const path of ['/livez', '/readyz']) {
        const response = await request(`${base}${path}`);
        assert.equal(response.statusCode, 200, `${base}${path}: ${await response.body.text()}`);
        await response.body.dump();
      }
      for (const path of ['/token', '/jwks', '/v1/callgraph', '/.well-known/oauth-authorization-server']) {
        const response = await request(`${base}${path}`);
        await response.body.dump();
        assert.equal(response.statusCode, 404, `${base}${path} is not served on the admin port`);
      }
      const post = await request(`${base}/metrics`, { method: 'POST', body: '' });
      await post.body.dump();
      assert.equal(post.statusCode, 405);
    }
    const tls = await request(`${mesh?.stsUrl}/readyz`, { dispatcher: mesh?.identities?.dispatcher });
    const admin = await request(`${stsAdminUrl}/readyz`);
    assert.deepEqual(await admin.body.json(), await tls.body.json());
  });

  for (const [component, path] of Object.entries(DASHBOARDS)) {
    it(`queries only metrics and labels that the running ${component} serves (${path})`, () => {
      const scrapes = component === 'sts' ? [sts] : sidecars;
      const names = knownNames(scrapes);
      const dashboard = loadDashboard(path);
      const exprs = expressions(dashboard);
      assert.ok(exprs.length >= 10, `${path} has panels`);
      for (const { where, expr } of exprs) {
        // Metric names, not the label names inside selectors and grouping clauses.
        const metrics = [
          ...expr
            .replace(/\{[^}]*\}/g, '')
            .replace(/\b(?:by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)/g, '')
            .matchAll(METRIC),
        ].map((m) => m[1] as string);
        assert.ok(metrics.length > 0, `${where} queries a baton, process or nodejs metric`);
        for (const metric of metrics) assert.ok(names.has(metric), `${where}: ${metric} is not in /metrics`);
        // Labels each selector matches on, and the labels it groups by, exist on the series queried.
        const labelsOf = (metric: string) =>
          new Set(
            scrapes.flatMap((s) => s.samples.filter((x) => x.name === metric).flatMap((x) => Object.keys(x.labels))),
          );
        for (const m of expr.matchAll(/\b((?:baton|process|nodejs)_[a-z0-9_]+)\{([^}]*)\}/g)) {
          const present = labelsOf(m[1] as string);
          if (present.size === 0) continue; // a family with no series yet (shadow denials in a mesh with no shadow rule)
          for (const matcher of (m[2] as string).matchAll(/(\w+)\s*(?:=~|!=|!~|=)/g))
            assert.ok(present.has(matcher[1] as string), `${where}: ${m[1]} has no label ${matcher[1]}`);
        }
        const present = new Set(metrics.flatMap((metric) => [...labelsOf(metric)]));
        if (metrics.some((metric) => labelsOf(metric).size === 0)) continue; // cannot check the labels of a series not seen yet
        for (const grouping of expr.matchAll(/\b(?:by|group_left|group_right)\s*\(([^)]*)\)/g)) {
          for (const label of (grouping[1] as string)
            .split(',')
            .map((l) => l.trim())
            .filter((l) => l !== '')) {
            if (!TARGET_LABELS.has(label))
              assert.ok(present.has(label), `${where}: no series queried has the label ${label}`);
          }
        }
      }
    });
  }

  describe('scraped by a real prometheus', () => {
    let prometheus: ChildProcess | undefined;
    let dir: string | undefined;
    let api = '';
    let output = '';

    before(async () => {
      const found = spawnSync('prometheus', ['--version'], { encoding: 'utf8', timeout: 10_000 });
      if (found.error !== undefined)
        throw new Error(`prometheus is required for this test (apt-get install prometheus): ${found.error.message}`);
      dir = mkdtempSync(join(tmpdir(), 'baton-prometheus-'));
      const port = await freePort();
      api = `http://127.0.0.1:${port}`;
      // As shipped: plain http on the admin ports, no tls_config, no insecure_skip_verify.
      writeFileSync(
        join(dir, 'prometheus.yml'),
        [
          'global: { scrape_interval: 1s, scrape_timeout: 900ms }',
          'scrape_configs:',
          `  - { job_name: baton-sidecar, static_configs: [{ targets: ["127.0.0.1:${gatewayAdmin}"] }] }`,
          `  - { job_name: baton-sts, static_configs: [{ targets: ["${new URL(stsAdminUrl).host}"] }] }`,
          `  - { job_name: baton-policy-server, static_configs: [{ targets: ["${new URL(policyAdminUrl).host}"] }] }`,
          '',
        ].join('\n'),
      );
      prometheus = spawn(
        'prometheus',
        [
          `--config.file=${join(dir, 'prometheus.yml')}`,
          `--storage.tsdb.path=${join(dir, 'data')}`,
          `--web.listen-address=127.0.0.1:${port}`,
          '--log.level=warn',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      prometheus.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      prometheus.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      // Two scrapes of each target at least, so that rate() has two samples.
      await waitFor(
        async () => {
          const up = await query('count(up == 1)');
          const scrapes = await query('min(count_over_time(up[1m]))');
          return Number(up[0]?.value[1]) === 3 && Number(scrapes[0]?.value[1]) >= 2;
        },
        {
          timeoutMs: 20_000,
          intervalMs: 250,
          what: `prometheus to scrape the sidecar, the STS and the policy server twice (its output: ${output.slice(-500)})`,
        },
      );
    });
    after(async () => {
      if (prometheus !== undefined && prometheus.exitCode === null) {
        const exited = new Promise((resolve) => prometheus?.once('exit', resolve));
        prometheus.kill('SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, 5_000)))]);
        clearTimeout(timer);
        if (prometheus.exitCode === null) prometheus.kill('SIGKILL');
      }
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    });

    async function query(expr: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> {
      const response = await request(`${api}/api/v1/query?${new URLSearchParams({ query: expr })}`);
      const body = (await response.body.json()) as {
        status: string;
        error?: string;
        data?: { result: Array<{ metric: Record<string, string>; value: [number, string] }> };
      };
      assert.equal(body.status, 'success', `${expr}: ${body.error}`);
      return body.data?.result ?? [];
    }

    it('scrapes the STS and the policy server as shipped, over their plaintext admin ports', async () => {
      for (const job of ['baton-sts', 'baton-policy-server']) {
        const up = await query(`up{job="${job}"}`);
        assert.equal(up[0]?.value[1], '1', `${job} is up: ${JSON.stringify(up)}`);
      }
      const version = await query('baton_policy_version{job="baton-policy-server"}');
      assert.ok(Number(version[0]?.value[1]) >= 1, JSON.stringify(version));
      const exchanges = await query('sum(baton_sts_token_requests_total{job="baton-sts"})');
      assert.ok(Number(exchanges[0]?.value[1]) >= 2, JSON.stringify(exchanges));
    });

    it('answers a latency quantile from the sidecar histogram', async () => {
      const buckets = await query(
        'baton_request_duration_seconds_bucket{direction="outbound",target="orders",code="200"}',
      );
      assert.ok(buckets.length >= 10, `bucket series: ${buckets.length}`);
      const p99 = await query(
        'histogram_quantile(0.99, sum by (le) (baton_request_duration_seconds_bucket{direction="inbound"}))',
      );
      const seconds = Number(p99[0]?.value[1]);
      assert.ok(seconds > 0 && seconds < 30, `inbound p99 ${seconds} s`);
    });

    it('runs every dashboard query without an error', async () => {
      for (const path of Object.values(DASHBOARDS)) {
        for (const { where, expr } of expressions(loadDashboard(path))) {
          if (expr.startsWith('label_values(')) continue; // a Grafana function, not PromQL
          await query(asGrafanaSends(expr)).catch((error: unknown) =>
            assert.fail(`${where}: ${error instanceof Error ? error.message : String(error)}`),
          );
        }
      }
      // The joins on baton_build_info find the sidecar: the per-target panels have data.
      const perTarget = await query(
        asGrafanaSends(
          expressions(loadDashboard(DASHBOARDS.sidecar)).find((e) => e.where.endsWith('Outbound rate by target'))
            ?.expr ?? '',
        ),
      );
      assert.ok(
        perTarget.some((r) => r.metric.target === 'orders'),
        JSON.stringify(perTarget),
      );
    });
  });
});
