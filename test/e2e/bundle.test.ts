import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildBundle, PROJECT_ROOT } from '../../scripts/build.ts';
import { request } from 'undici';
import { type Mesh, startMesh } from '../../src/demo/mesh.ts';
import { runScenarios, type ScenarioResult } from '../../src/demo/scenario.ts';
import { type OtlpReceiver, startOtlpReceiver } from '../helpers/otlp-receiver.ts';
import { assertDemoOutcome } from '../helpers/demo-outcome.ts';
import { startProcess } from '../helpers/process.ts';
import { startAuthz } from '../helpers/authz-mesh.ts';
import { checkRequest, connectExtAuthz, headersOf } from '../helpers/ext-authz-client.ts';

// Inside the project (gitignored) so the external packages resolve from its node_modules, as they do in the image.
mkdirSync(join(PROJECT_ROOT, '.baton-dev'), { recursive: true });
const outdir = mkdtempSync(join(PROJECT_ROOT, '.baton-dev', 'bundle-'));
const entry = join(outdir, 'baton.mjs');
// With type stripping off, importing any .ts file fails: a process that runs at all loaded none.
const NO_TYPESCRIPT = { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --no-experimental-strip-types`.trim() };

async function runBundle(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const running = startProcess(process.execPath, [entry, ...args], NO_TYPESCRIPT);
  const code = await running.exited;
  return { code, stdout: running.stdout(), stderr: running.stderr() };
}

describe('the bundle (what the image and the benchmark run)', { timeout: 150_000 }, () => {
  let mesh: Mesh | undefined;
  let receiver: OtlpReceiver | undefined;

  before(async () => {
    await buildBundle(outdir);
  });
  after(async () => {
    await mesh?.stop();
    await receiver?.close();
    rmSync(outdir, { recursive: true, force: true });
  });

  it('runs the CLI without type stripping', async () => {
    const { code, stdout, stderr } = await runBundle(['--help']);
    assert.equal(code, 0, stderr.slice(-3000));
    assert.match(stdout, /sidecar/);
  });

  it('splits each subcommand into its own chunk, so a sidecar loads no STS, policy server or injector code', () => {
    const chunks = readdirSync(outdir).filter((name) => name.endsWith('.mjs'));
    for (const command of ['sidecar', 'sts', 'policy-server', 'injector', 'demo', 'authz']) {
      assert.ok(
        chunks.some((name) => name.startsWith(`${command}-`)),
        `no chunk for ${command} in ${chunks.join(' ')}`,
      );
    }
  });

  it("drives the demo's allowed chain and refuses its denied one, every mesh process running the bundle with tracing on", async () => {
    receiver = await startOtlpReceiver();
    // Tracing on: the OpenTelemetry packages stay external, and one API copy must serve baton and the SDK alike.
    const tracing = {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '100',
      OTEL_TRACES_SAMPLER: 'always_on',
    };
    mesh = await startMesh({ entry, env: { ...NO_TYPESCRIPT, ...tracing } });
    const results = await runScenarios(mesh);
    // prom-client is bundled (CommonJS, loading node: built-ins): the runtime series must come out of the bundle too.
    for (const url of [`http://127.0.0.1:${mesh.services.gateway.admin}/metrics`, `${mesh.stsUrl}/metrics`]) {
      // The STS speaks TLS in the mtls mesh: trust the mesh's development bundle.
      const text = await (
        await request(url, mesh.identities === undefined ? {} : { dispatcher: mesh.identities.dispatcher })
      ).body.text();
      assert.match(text, /^baton_build_info\{version="[^"]+",component="(?:sidecar|sts)",/m, url);
      assert.match(text, /^process_cpu_seconds_total \d/m, url);
      assert.match(text, /^nodejs_eventloop_lag_p99_seconds \d/m, url);
    }
    // SIGTERM flushes the batched spans.
    await mesh.stop();
    mesh = undefined;
    const { allowed } = assertDemoOutcome(results);

    const spans = receiver.spans.filter((span) => span.attributes['baton.txn'] === allowed.txn);
    assert.equal(new Set(spans.map((span) => span.traceId)).size, 1, 'one trace from the entry hop to the last');
    for (const service of ['gateway', 'orders', 'payments'])
      assert.ok(
        spans.some((span) => span.serviceName.includes(service)),
        `no span from ${service} in ${[...new Set(spans.map((x) => x.serviceName))].join(', ')}`,
      );
  });

  it("serves Envoy's gRPC ext_authz API from `baton authz`: @grpc/grpc-js from node_modules, the protos compiled into the bundle", async () => {
    const control = await startMesh({ entry, env: NO_TYPESCRIPT, dataPlane: 'none' });
    const authz = await startAuthz(control, 'gateway', { entry, env: NO_TYPESCRIPT }).catch(async (error: unknown) => {
      await control.stop();
      throw error;
    });
    const client = connectExtAuthz(authz.grpc);
    try {
      const token = await control.userToken({ sub: 'alice', scope: 'shop' });
      const allowed = await client.check(
        checkRequest({
          method: 'GET',
          path: '/checkout',
          host: 'gateway',
          headers: { authorization: `Bearer ${token}` },
        }),
      );
      assert.equal(allowed.status?.code, 0, JSON.stringify(allowed));
      assert.equal(headersOf(allowed.ok_response?.headers)['baton-subject'], 'alice');
      const refused = await client.check(checkRequest({ method: 'GET', path: '/checkout', host: 'gateway' }));
      assert.equal(refused.status?.code, 16);
    } finally {
      client.close();
      await authz.stop();
      await control.stop();
    }
  });

  it('runs `baton demo` on its own: the bundle carries the demo call graph and starts itself for every part', async () => {
    const { code, stdout, stderr } = await runBundle(['demo', '--json']);
    assert.equal(code, 0, stderr.slice(-3000));
    assertDemoOutcome(JSON.parse(stdout) as ScenarioResult[]);
  });
});
