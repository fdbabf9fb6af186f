import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BATON_VERSION } from '../../src/core/version.ts';
import { type Mesh, type ServicePorts, startMesh } from '../../src/demo/mesh.ts';
import { request } from 'undici';
import { DEMO_USER, postInbound, runScenarios, type ScenarioResult } from '../../src/demo/scenario.ts';
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from '../helpers/otlp-receiver.ts';
import { runBaton } from '../helpers/process.ts';
import { PolicyDeniedError } from '../../src/policy/language/errors.ts';
import { UnauthenticatedError } from '../../src/sidecar/errors.ts';
import { InvalidClientError } from '../../src/sts/errors.ts';

const SERVER = 2;
const CLIENT = 3;
const ERROR = 2;
// The caller's trace for a call whose every exchange is answered by the in-process cache.
const CACHED_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
// A call refused at the gateway's inbound port (no token), and a client refused at the STS.
const REFUSED_TRACE = '5cf92f3577b34da6a3ce929d0e0e4737';
const STS_REFUSED_TRACE = '6df92f3577b34da6a3ce929d0e0e4738';
// Sent on the cached call: a query value that must never reach a span.
const QUERY = '?debug=1&access_token=eyJhbGciOiJub25lIn0.e30.';

describe('traces across the three-hop mesh (OTLP/HTTP JSON to a loopback receiver)', () => {
  let receiver: OtlpReceiver;
  let mesh: Mesh | undefined;
  let results: ScenarioResult[];
  let logText = '';
  let logLines: Array<Record<string, unknown>> = [];
  let logDir: string | undefined;
  let ports: Readonly<Record<string, ServicePorts>>;
  let stsUrl = '';
  let meshScheme = 'https';

  before(async () => {
    receiver = await startOtlpReceiver();
    mesh = await startMesh({
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_BSP_SCHEDULE_DELAY: '100',
        OTEL_TRACES_SAMPLER: 'always_on',
      },
    });
    results = await runScenarios(mesh);
    ports = mesh.services;
    stsUrl = mesh.stsUrl;
    meshScheme = mesh.transport === 'mtls' ? 'https' : 'http';
    // The same token twice: the second call's exchanges are all in-process cache hits.
    const authorization = `Bearer ${await mesh.userToken(DEMO_USER)}`;
    await postInbound(mesh.services.gateway.entry, '/checkout', authorization);
    const cached = await request(`http://127.0.0.1:${mesh.services.gateway.entry}/checkout${QUERY}`, {
      method: 'POST',
      headers: {
        authorization,
        'content-type': 'application/json',
        'user-agent': 'baton-e2e/1.0',
        traceparent: `00-${CACHED_TRACE}-00f067aa0ba902b7-01`,
      },
      body: '{}',
    });
    await cached.body.text();
    assert.equal(cached.statusCode, 200);
    const refused = await request(`http://127.0.0.1:${mesh.services.gateway.entry}/checkout`, {
      method: 'POST',
      headers: { traceparent: `00-${REFUSED_TRACE}-00f067aa0ba902b7-01` },
      body: '{}',
    });
    await refused.body.text();
    assert.equal(refused.statusCode, 401);
    // The STS speaks TLS in the mtls mesh: trust the mesh's development bundle (and present no certificate).
    const tlsTo = mesh.identities === undefined ? {} : { dispatcher: mesh.identities.dispatcher };
    const badClient = await request(`${mesh.stsUrl}/token`, {
      ...tlsTo,
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from('gateway:wrong-secret').toString('base64')}`,
        traceparent: `00-${STS_REFUSED_TRACE}-00f067aa0ba902b7-01`,
      },
      body: 'grant_type=client_credentials&audience=orders',
    });
    await badClient.body.text();
    assert.equal(badClient.statusCode, 401);
    // Scrapes and probes, which make no spans.
    for (const url of [
      `${mesh.stsUrl}/metrics`,
      `${mesh.stsUrl}/readyz`,
      `${mesh.stsUrl}/livez`,
      `http://127.0.0.1:${mesh.services.gateway.admin}/metrics`,
    ]) {
      const scraped = await request(url, tlsTo);
      await scraped.body.text();
      assert.equal(scraped.statusCode, 200, url);
    }
    // SIGTERM to every process: the spans still batched must be flushed before they exit.
    await mesh.stop();
    logText = mesh.processes.map((p) => p.output()).join('\n');
    logLines = mesh.processes.flatMap((p) => p.logs);
    // One file per process, as an operator would collect them.
    logDir = mkdtempSync(join(tmpdir(), 'baton-audit-'));
    for (const p of mesh.processes) writeFileSync(join(logDir, `${p.name}.log`), p.output());
    mesh = undefined;
  });
  after(async () => {
    await mesh?.stop();
    await receiver.close();
    if (logDir !== undefined) rmSync(logDir, { recursive: true, force: true });
  });

  const traceOf = (txn: string | undefined): ReceivedSpan[] => {
    const traceIds = new Set(receiver.spans.filter((s) => s.attributes['baton.txn'] === txn).map((s) => s.traceId));
    assert.equal(traceIds.size, 1, `expected one trace for txn ${txn}, got ${traceIds.size}`);
    const [traceId] = [...traceIds];
    return receiver.spans.filter((s) => s.traceId === traceId);
  };
  const find = (
    spans: readonly ReceivedSpan[],
    predicate: (s: ReceivedSpan) => boolean,
    what: string,
  ): ReceivedSpan => {
    const found = spans.find(predicate);
    assert.ok(
      found,
      `expected a span: ${what}; got\n${spans.map((s) => `${s.serviceName} ${s.kind} ${s.name}`).join('\n')}`,
    );
    return found;
  };

  it('drives the allowed and the denied chain', () => {
    assert.deepEqual(
      results.map((r) => [r.name, r.passed]),
      [
        ['allowed', true],
        ['denied', true],
      ],
    );
  });

  it('records the allowed chain as one trace: gateway → orders → payments, STS exchanges included, parents linked across processes', () => {
    const txn = results[0]?.txn;
    const spans = traceOf(txn);
    const inbound = (service: string) =>
      find(
        spans,
        (s) => s.serviceName === service && s.kind === SERVER && s.attributes['baton.direction'] === 'inbound',
        `${service} inbound SERVER`,
      );
    const egress = (service: string) =>
      find(
        spans,
        (s) => s.serviceName === service && s.kind === CLIENT && s.attributes['baton.direction'] === 'outbound',
        `${service} outbound CLIENT`,
      );

    const gatewayIn = inbound('gateway');
    assert.equal(gatewayIn.parentSpanId, undefined, 'the entry hop starts the trace');
    for (const [service, target] of [
      ['gateway', 'orders'],
      ['orders', 'payments'],
    ] as const) {
      const out = egress(service);
      // The app propagated the context of our SERVER span, which it was forwarded in, so its outbound call hangs under it.
      assert.equal(out.parentSpanId, inbound(service).spanId);
      assert.equal(out.attributes['baton.target'], target);
      // The upstream actually called: the demo maps each service to its sidecar's inbound port on loopback.
      // Mesh hops are https in the mtls mesh.
      // orders charges payments over gRPC: the path is the method's.
      assert.equal(
        out.attributes['url.full'],
        `${meshScheme}://127.0.0.1:${ports[target]?.inbound}${target === 'orders' ? '/orders' : '/shop.v1.Payments/Charge'}`,
      );
      assert.equal(out.attributes['server.address'], '127.0.0.1');
      assert.equal(out.attributes['server.port'], ports[target]?.inbound);
      assert.equal(out.attributes['baton.caller'], service);
      assert.equal(out.attributes['baton.exchange.cache'], 'miss');

      const exchange = find(
        spans,
        (s) =>
          s.serviceName === service &&
          s.kind === CLIENT &&
          s.parentSpanId === out.spanId &&
          s.attributes['baton.exchange.cache'] !== undefined,
        `${service} exchange CLIENT`,
      );
      assert.equal(exchange.attributes['baton.exchange.cache'], 'miss');
      assert.equal(exchange.attributes['baton.exchange.outcome'], 'issued');
      assert.equal(exchange.attributes['url.full'], `${stsUrl}/token`);
      const sts = find(
        spans,
        (s) => s.serviceName === 'baton-sts' && s.parentSpanId === exchange.spanId,
        `STS span under ${service}'s exchange`,
      );
      assert.equal(sts.kind, SERVER);
      assert.equal(sts.name, 'POST /token');
      assert.equal(sts.attributes['http.route'], '/token');
      assert.equal(sts.attributes['baton.client'], service);
      assert.equal(sts.attributes['baton.target'], target);
      assert.equal(sts.attributes['baton.exchange.outcome'], 'issued');

      // The next sidecar's SERVER span is the child of this egress span: one trace across processes.
      assert.equal(inbound(target).parentSpanId, out.spanId);
    }
    const paymentsIn = inbound('payments');
    assert.equal(paymentsIn.attributes['baton.chain'], 'gateway,orders');
    assert.equal(paymentsIn.attributes['baton.caller'], 'orders');
    assert.equal(paymentsIn.attributes['baton.rule'], 'payments.accepts.charge');
    assert.equal(paymentsIn.attributes['baton.decision'], 'allow');
    assert.equal(paymentsIn.attributes['baton.txn'], txn);
    assert.equal(typeof paymentsIn.attributes['baton.policy.version'], 'number');
    assert.equal(paymentsIn.attributes['http.request.method'], 'POST');
    assert.equal(paymentsIn.attributes['url.path'], '/shop.v1.Payments/Charge');
    assert.equal(paymentsIn.attributes['http.response.status_code'], 200);
    // The gRPC hop carries the RPC conventions on both sides, and its status.
    for (const span of [paymentsIn, egress('orders')]) {
      assert.equal(span.name, 'shop.v1.Payments/Charge');
      assert.equal(span.attributes['rpc.system'], 'grpc');
      assert.equal(span.attributes['rpc.service'], 'shop.v1.Payments');
      assert.equal(span.attributes['rpc.method'], 'Charge');
      assert.equal(span.attributes['rpc.grpc.status_code'], 0);
      assert.equal(span.attributes['network.protocol.version'], '2');
    }

    const decisions = spans.filter((s) => s.events.some((e) => e.name === 'baton.policy.decision'));
    assert.equal(decisions.length, 5, 'gateway in/out, orders in/out, payments in');
    assert.ok(decisions.every((s) => s.kind === SERVER || s.kind === CLIENT));
    // The subject is a keyed hash, the same at every hop (one key for the mesh), never the clear id.
    const subjects = new Set(spans.map((s) => s.attributes['baton.subject']).filter((v) => v !== undefined));
    assert.equal(subjects.size, 1);
    assert.match(String([...subjects][0]), /^hmac:/);
    assert.ok(!subjects.has('alice'));
    // The subject's issuer travels beside it, in clear: the demo IdP at every hop, the STS included.
    const issuers = new Set(spans.map((s) => s.attributes['baton.subject.issuer']).filter((v) => v !== undefined));
    assert.equal(issuers.size, 1);
    assert.match(String([...issuers][0]), /^http:\/\/127\.0\.0\.1:\d+/);
  });

  it('records a cache hit on the egress span and adds no exchange span for it', () => {
    const spans = receiver.spans.filter((s) => s.traceId === CACHED_TRACE);
    const egress = spans.filter((s) => s.kind === CLIENT && s.attributes['baton.direction'] === 'outbound');
    assert.deepEqual(egress.map((s) => [s.serviceName, s.attributes['baton.exchange.cache']]).sort(), [
      ['gateway', 'hit'],
      ['orders', 'hit'],
    ]);
    assert.deepEqual(
      spans.filter((s) => s.name === 'POST /token' || s.serviceName === 'baton-sts'),
      [],
    );
    // One SERVER span per sidecar and one CLIENT span per call out; nothing per cache lookup or per forward to the app.
    assert.deepEqual(spans.map((s) => `${s.serviceName} ${s.kind}`).sort(), [
      'gateway 2',
      'gateway 3',
      'orders 2',
      'orders 3',
      'payments 2',
    ]);
  });

  it('follows the stable HTTP conventions: client.address, user_agent.original, network.protocol.version, url.query with its values redacted', () => {
    const spans = receiver.spans.filter((s) => s.traceId === CACHED_TRACE);
    const gatewayIn = find(spans, (s) => s.serviceName === 'gateway' && s.kind === SERVER, 'gateway SERVER');
    assert.equal(gatewayIn.attributes['client.address'], '127.0.0.1');
    assert.equal(gatewayIn.attributes['network.peer.address'], '127.0.0.1');
    assert.equal(gatewayIn.attributes['user_agent.original'], 'baton-e2e/1.0');
    assert.equal(gatewayIn.attributes['network.protocol.version'], '1.1');
    assert.equal(gatewayIn.attributes['url.path'], '/checkout');
    assert.equal(gatewayIn.attributes['url.scheme'], 'http');
    assert.equal(gatewayIn.attributes['url.query'], 'debug=REDACTED&access_token=REDACTED');
    assert.equal(gatewayIn.attributes['server.address'], '127.0.0.1');
    // The port the request arrived on: the gateway's plaintext entry listener, outside the mesh.
    assert.equal(gatewayIn.attributes['server.port'], ports.gateway?.entry);
    // HTTP/1.1 hops say 1.1; orders → payments is gRPC, HTTP/2 end to end.
    for (const span of spans.filter((s) => s.kind === CLIENT))
      assert.equal(
        span.attributes['network.protocol.version'],
        span.serviceName === 'orders' ? '2' : '1.1',
        `${span.serviceName} CLIENT`,
      );
  });

  it('names the tracer with its version, and each process with service.version and its own service.instance.id', () => {
    assert.ok(receiver.spans.length > 0);
    const instances = new Map<string, Set<unknown>>();
    for (const span of receiver.spans) {
      assert.deepEqual(span.scope, { name: 'baton', version: BATON_VERSION });
      assert.equal(span.resource['service.version'], BATON_VERSION);
      assert.match(
        String(span.resource['service.instance.id']),
        /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
      );
      instances.set(
        span.serviceName,
        (instances.get(span.serviceName) ?? new Set()).add(span.resource['service.instance.id']),
      );
    }
    // One id per process, a different one in each.
    assert.deepEqual([...instances.keys()].sort(), ['baton-sts', 'gateway', 'orders', 'payments']);
    assert.ok([...instances.values()].every((ids) => ids.size === 1));
    assert.equal(new Set([...instances.values()].flatMap((ids) => [...ids])).size, 4);
  });

  it('says why a SERVER span was refused (error.type), leaving its status unset for a 4xx as the conventions require', () => {
    const gateway = find(
      receiver.spans,
      (s) => s.traceId === REFUSED_TRACE && s.serviceName === 'gateway' && s.kind === SERVER,
      'refused gateway SERVER span',
    );
    assert.equal(gateway.attributes['http.response.status_code'], 401);
    assert.equal(gateway.attributes['error.type'], UnauthenticatedError.code);
    assert.equal(gateway.statusCode, 0);
    const sts = find(
      receiver.spans,
      (s) => s.traceId === STS_REFUSED_TRACE && s.serviceName === 'baton-sts',
      'refused STS SERVER span',
    );
    assert.equal(sts.kind, SERVER);
    assert.equal(sts.attributes['http.response.status_code'], 401);
    assert.equal(sts.attributes['error.type'], InvalidClientError.code);
    assert.equal(sts.statusCode, 0);
  });

  it('traces no Prometheus scrape and no health probe', () => {
    const operational = receiver.spans.filter((s) =>
      ['/metrics', '/livez', '/readyz'].includes(String(s.attributes['url.path'])),
    );
    assert.deepEqual(
      operational.map((s) => `${s.serviceName} ${s.name} ${String(s.attributes['url.path'])}`),
      [],
    );
  });

  it('marks the denied call as an error span naming the rule', () => {
    const spans = traceOf(results[1]?.txn);
    const denied = find(
      spans,
      (s) => s.serviceName === 'gateway' && s.kind === CLIENT && s.attributes['baton.decision'] === 'deny',
      'denied egress span',
    );
    assert.equal(denied.statusCode, ERROR);
    assert.equal(denied.attributes['baton.rule'], 'payments.accepts');
    assert.equal(denied.attributes['baton.target'], 'payments');
    assert.equal(denied.attributes['http.response.status_code'], 403);
    assert.equal(denied.attributes['error.type'], PolicyDeniedError.code);
    assert.ok(denied.events.some((e) => e.name === 'baton.policy.decision'));
    assert.equal(denied.attributes['baton.decision.cause'], 'no_edge');
    // Refused before any exchange: no STS span in this trace.
    assert.equal(spans.filter((s) => s.serviceName === 'baton-sts').length, 0);
  });

  it('puts trace_id and span_id next to txn on every audit line, matching the spans', () => {
    const audit = logLines.filter(
      (l) => l.event === 'decision' || l.msg === 'token issued' || l.msg === 'token refused by policy',
    );
    assert.ok(audit.length >= 9, `expected the audit lines of both scenarios, got ${audit.length}`);
    const spanIds = new Set(receiver.spans.map((s) => `${s.traceId}/${s.spanId}`));
    for (const line of audit) {
      assert.equal(typeof line.txn, 'string');
      assert.match(String(line.trace_id), /^[0-9a-f]{32}$/);
      assert.ok(
        spanIds.has(`${String(line.trace_id)}/${String(line.span_id)}`),
        `audit line joins a received span: ${JSON.stringify(line)}`,
      );
    }
  });

  it('leaks no token material into any log line or exported span', () => {
    assert.ok(receiver.bodies.length > 0);
    for (const [what, text] of [
      ['logs', logText],
      ['OTLP bodies', receiver.bodies.join('\n')],
    ] as const) {
      assert.ok(!text.includes('eyJ'), `found JWT material in ${what}`);
      assert.ok(!/Bearer /i.test(text), `found a Bearer value in ${what}`);
    }
  });

  it('baton audit --txn reconstructs the allowed chain: hops, rules and the STS issuances, in order', async () => {
    const { code, stdout } = await runBaton(['audit', `--txn=${String(results[0]?.txn)}`, '--json', logDir as string]);
    assert.equal(code, 0);
    const trail = JSON.parse(stdout);
    assert.deepEqual(trail.hops, ['gateway', 'orders', 'payments']);
    assert.equal(trail.traceIds.length, 1);
    assert.equal(trail.deniedAt, undefined);
    const rows = trail.events.map((e: Record<string, unknown>) => [
      e.service,
      e.direction ?? e.component,
      e.target,
      e.rule,
      e.decision,
    ]);
    assert.deepEqual(rows, [
      ['gateway', 'inbound', 'gateway', 'gateway.accepts.public-api', 'allow'],
      ['gateway', 'outbound', 'orders', 'orders.accepts.from-gateway', 'allow'],
      ['baton-sts', 'sts', 'orders', 'orders.accepts.from-gateway', 'allow'],
      ['orders', 'inbound', 'orders', 'orders.accepts.from-gateway', 'allow'],
      ['orders', 'outbound', 'payments', 'payments.accepts.charge', 'allow'],
      ['baton-sts', 'sts', 'payments', 'payments.accepts.charge', 'allow'],
      ['payments', 'inbound', 'payments', 'payments.accepts.charge', 'allow'],
    ]);
  });

  it('baton audit --trace finds the denied chain and says where and by which rule it stopped', async () => {
    const traceId = traceOf(results[1]?.txn)[0]?.traceId as string;
    const { code, stdout } = await runBaton(['audit', '--trace', traceId, logDir as string]);
    assert.equal(code, 0);
    assert.match(stdout, new RegExp(`^txn: +${results[1]?.txn}$`, 'm'));
    assert.match(stdout, /^hops: +gateway +✘ denied at gateway outbound → payments by payments\.accepts \(no_edge\)$/m);
    assert.match(
      stdout,
      /outbound .*→ payments .*POST \/charges .*deny .*rule=payments\.accepts +cause=no_edge +status=403/,
    );
  });

  it('baton audit exits 1 when nothing matches', async () => {
    const { code } = await runBaton(['audit', '--txn', 'no-such-txn', logDir as string]);
    assert.equal(code, 1);
  });
});
