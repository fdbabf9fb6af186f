/**
 * `baton authz` traces its checks as the sidecar traces its requests: a
 * SERVER span per inbound check and a CLIENT span per outbound one,
 * children of the trace context the checked request carries, with the
 * policy decision as a span event and the refusal's code as error.type;
 * with tracing on, the answer carries the trace on (traceparent), so the
 * app's and the next hop's spans join one trace. Real processes, an OTLP
 * receiver in this process.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status as grpcStatus } from '@grpc/grpc-js';
import { type Mesh, startMesh } from '../../src/demo/mesh.ts';
import { DEMO_USER } from '../../src/demo/scenario.ts';
import { type AuthzProcess, startAuthz } from '../helpers/authz-mesh.ts';
import { checkRequest, connectExtAuthz, type ExtAuthzClient, headersOf } from '../helpers/ext-authz-client.ts';
import { waitFor } from '../helpers/net.ts';
import { type OtlpReceiver, startOtlpReceiver } from '../helpers/otlp-receiver.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

describe('baton authz spans', { timeout: 120_000 }, () => {
  let mesh: Mesh;
  let receiver: OtlpReceiver;
  let gateway: AuthzProcess;
  let client: ExtAuthzClient;

  before(async () => {
    receiver = await startOtlpReceiver();
    mesh = await startMesh({ dataPlane: 'none' });
    gateway = await startAuthz(mesh, 'gateway', {
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_BSP_SCHEDULE_DELAY: '100',
        OTEL_TRACES_SAMPLER: 'always_on',
      },
    });
    client = connectExtAuthz(gateway.grpc);
  });
  after(async () => {
    client?.close();
    await gateway?.stop();
    await mesh?.stop();
    await receiver?.close();
  });

  it("a SERVER span per inbound check, in the checked request's trace, with the decision event; the answer carries the trace to the app", async () => {
    const token = await mesh.userToken(DEMO_USER);
    const response = await client.check(
      checkRequest({
        method: 'POST',
        path: '/checkout',
        host: 'gateway',
        headers: { authorization: `Bearer ${token}`, traceparent: `00-${TRACE}-${PARENT}-01` },
      }),
    );
    assert.equal(response.status?.code, grpcStatus.OK);
    const traceparent = headersOf(response.ok_response?.headers).traceparent ?? '';
    assert.match(traceparent, new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`));
    const span = await waitFor(
      async () => receiver.spans.find((s) => s.traceId === TRACE && s.parentSpanId === PARENT),
      { what: "the check's span" },
    );
    assert.equal(span.kind, 2, 'SERVER');
    assert.equal(span.attributes['http.request.method'], 'POST');
    assert.equal(span.attributes['url.path'], '/checkout');
    assert.ok(span.events.some((e) => e.name === 'baton.policy.decision'));
    assert.equal(traceparent.split('-')[2], span.spanId, "the app's spans are children of the check's");
  });

  it('a CLIENT span per outbound check, error.type naming the refusal of a denied edge', async () => {
    const token = await mesh.userToken(DEMO_USER);
    const entered = await client.check(
      checkRequest({
        method: 'POST',
        path: '/checkout',
        host: 'gateway',
        headers: { authorization: `Bearer ${token}` },
      }),
    );
    const handle = headersOf(entered.ok_response?.headers)['baton-context'] as string;
    const trace = 'a'.repeat(32);
    const denied = await client.check(
      checkRequest({
        method: 'POST',
        path: '/charges',
        host: 'payments',
        headers: { 'baton-context': handle, traceparent: `00-${trace}-${PARENT}-01` },
        contextExtensions: { direction: 'outbound' },
      }),
    );
    assert.equal(denied.status?.code, grpcStatus.PERMISSION_DENIED);
    const span = await waitFor(async () => receiver.spans.find((s) => s.traceId === trace), {
      what: "the outbound check's span",
    });
    assert.equal(span.kind, 3, 'CLIENT');
    assert.equal(span.attributes['baton.target'], 'payments');
    assert.equal(span.attributes['error.type'], 'BATON_POLICY_DENIED');
    assert.ok(span.events.some((e) => e.name === 'baton.policy.decision'));
  });
});
