/**
 * `baton authz` over Envoy's gRPC external authorization API v3, driven by
 * @grpc/grpc-js with the vendored official protos, as Envoy's ext_authz
 * filter calls it. No Envoy binary can run on these machines: these tests
 * hold baton to Envoy's documented contract field by field instead
 * (docs/authz.md, "Envoy's contract"), against real processes: the demo
 * mesh's control plane (dev IdP, policy server, STS, mTLS identities) and
 * two authorizers, gateway's and orders'.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status as grpcStatus } from '@grpc/grpc-js';
import { decodeJwt } from 'jose';
import { request } from 'undici';
import { type Mesh, startMesh } from '../../src/demo/mesh.ts';
import { DEMO_USER } from '../../src/demo/scenario.ts';
import { type AuthzProcess, startAuthz } from '../helpers/authz-mesh.ts';
import {
  type CheckRequestFields,
  type CheckResponse,
  checkRequest,
  connectExtAuthz,
  type ExtAuthzClient,
  headersOf,
} from '../helpers/ext-authz-client.ts';
import { waitFor } from '../helpers/net.ts';

const NO_ENVOY =
  "NO ENVOY BINARY CAN RUN ON THIS MACHINE: baton authz is held to Envoy's documented ext_authz v3 contract field by field (vendored protos, @grpc/grpc-js), not to a running Envoy";

interface Problem {
  code: string;
  status: number;
  rule?: string;
  reason?: string;
}

function problemOf(response: CheckResponse): Problem {
  return JSON.parse(response.denied_response?.body ?? '{}') as Problem;
}

describe(
  'baton authz: Envoy gRPC ext_authz v3 (envoy.service.auth.v3.Authorization/Check)',
  { timeout: 180_000 },
  () => {
    let mesh: Mesh;
    let gateway: AuthzProcess;
    let orders: AuthzProcess;
    let atGateway: ExtAuthzClient;
    let atOrders: ExtAuthzClient;
    let gatewayCert: string;
    let ordersCert: string;
    const secrets: string[] = [];

    before(async () => {
      process.stdout.write(`\n!!!!! ${NO_ENVOY} !!!!!\n\n`);
      mesh = await startMesh({ dataPlane: 'none' });
      [gateway, orders] = await Promise.all([startAuthz(mesh, 'gateway'), startAuthz(mesh, 'orders')]);
      atGateway = connectExtAuthz(gateway.grpc);
      atOrders = connectExtAuthz(orders.grpc);
      const ids = mesh.identities;
      assert.ok(ids);
      gatewayCert = readFileSync(join(ids.dir, 'gateway', 'tls.crt'), 'utf8');
      ordersCert = readFileSync(join(ids.dir, 'orders', 'tls.crt'), 'utf8');
    });

    after(async () => {
      atGateway?.close();
      atOrders?.close();
      await Promise.all([gateway?.stop(), orders?.stop()]);
      await mesh?.stop();
    });

    it(`says so: ${NO_ENVOY}`, (t) => {
      t.diagnostic(NO_ENVOY);
    });

    async function userToken(sub = 'alice'): Promise<string> {
      const token = await mesh.userToken({ ...DEMO_USER, sub });
      secrets.push(token);
      return token;
    }

    /** What the gateway's inbound check answers for a user's request, and the handle it hands the app. */
    async function enterGateway(
      token: string,
    ): Promise<{ response: CheckResponse; set: Record<string, string>; handle: string }> {
      const response = await atGateway.check(
        checkRequest({
          method: 'POST',
          path: '/checkout?basket=7',
          host: 'gateway.shop.example',
          headers: { authorization: `Bearer ${token}` },
        }),
      );
      const set = headersOf(response.ok_response?.headers);
      const handle = set['baton-context'];
      assert.ok(handle, JSON.stringify(response));
      secrets.push(handle);
      return { response, set, handle };
    }

    /** A token for orders, exchanged by the gateway's authorizer for a user's handle: bound to the gateway's certificate. */
    async function tokenForOrders(sub = 'alice'): Promise<{ token: string; request: string }> {
      const { handle } = await enterGateway(await userToken(sub));
      const response = await atGateway.check(
        checkRequest({ method: 'POST', path: '/orders', host: 'orders', headers: { 'baton-context': handle } }),
        { metadata: { 'x-baton-direction': 'outbound' } },
      );
      const set = headersOf(response.ok_response?.headers);
      const token = set.authorization?.replace(/^Bearer /, '');
      assert.ok(token, JSON.stringify(response));
      secrets.push(token);
      return { token, request: set['baton-request'] as string };
    }

    describe('inbound (the ext_authz filter in front of the app)', () => {
      it('reads method, path, host and headers; answers status OK and an ok_response that sets the identity headers (append: false) and removes Authorization and every other baton-* field', async () => {
        const token = await userToken();
        const response = await atGateway.check(
          checkRequest({
            method: 'POST',
            path: '/checkout?basket=7',
            host: 'gateway',
            headers: {
              authorization: `Bearer ${token}`,
              'baton-subject': 'mallory',
              'baton-admin': 'yes',
              baton_chain: 'admin',
            },
          }),
        );
        assert.equal(response.status?.code, grpcStatus.OK);
        assert.equal(response.http_response, 'ok_response');
        const set = headersOf(response.ok_response?.headers);
        assert.equal(set['baton-subject'], 'alice', "the verified subject overwrites the caller's copy");
        assert.equal(set['baton-subject-type'], 'user');
        assert.equal(set['baton-subject-issuer'], mesh.idpUrl);
        assert.equal(set['baton-caller'], 'external');
        assert.equal(set['baton-scope'], [...DEMO_USER.scope.split(' ')].sort().join(' '));
        assert.match(set['baton-txn'] ?? '', /^[A-Za-z0-9_-]+$/);
        assert.match(set['baton-request'] ?? '', /^[A-Za-z0-9_-]{16}$/);
        assert.match(set['baton-context'] ?? '', /^bctx_/);
        const removed = new Set(response.ok_response?.headers_to_remove);
        for (const name of ['authorization', 'baton-chain', 'baton-admin', 'baton_chain'])
          assert.ok(removed.has(name), `${name} removed: ${[...removed].join(', ')}`);
        assert.ok(!removed.has('baton-subject'), 'a field that is set is not also removed');
      });

      it('refuses a request without a token: UNAUTHENTICATED, denied_response 401 with the RFC 6750 challenge and the problem document', async () => {
        const response = await atGateway.check(checkRequest({ method: 'GET', path: '/checkout', host: 'gateway' }));
        assert.equal(response.status?.code, grpcStatus.UNAUTHENTICATED);
        assert.equal(response.status?.message, 'BATON_UNAUTHENTICATED');
        assert.equal(response.http_response, 'denied_response');
        assert.equal(response.denied_response?.status?.code, 401);
        const headers = headersOf(response.denied_response?.headers);
        assert.equal(headers['content-type'], 'application/problem+json');
        assert.equal(headers['www-authenticate'], 'Bearer realm="baton"');
        assert.equal(problemOf(response).code, 'BATON_UNAUTHENTICATED');
      });

      it("takes Envoy's raw headers (encode_raw_headers: header_map with raw_value) and refuses two Authorization fields, which the merged map would hide", async () => {
        const token = await userToken();
        const one = await atGateway.check(
          checkRequest({
            method: 'GET',
            path: '/checkout',
            host: 'gateway',
            rawHeaders: [
              [':authority', 'gateway'],
              ['authorization', `Bearer ${token}`],
            ],
          }),
        );
        assert.equal(one.status?.code, grpcStatus.OK, JSON.stringify(one));
        const two = await atGateway.check(
          checkRequest({
            method: 'GET',
            path: '/checkout',
            host: 'gateway',
            rawHeaders: [
              ['authorization', `Bearer ${token}`],
              ['authorization', `Bearer ${token}`],
            ],
          }),
        );
        assert.equal(two.status?.code, grpcStatus.INVALID_ARGUMENT);
        assert.equal(two.denied_response?.status?.code, 400);
        assert.equal(problemOf(two).code, 'BATON_BAD_REQUEST');
      });

      it('checks a certificate-bound token against source.certificate (include_peer_certificate) and source.principal: accepted from its own workload, refused from another', async () => {
        const ids = mesh.identities!;
        const { token, request: requestId } = await tokenForOrders();
        const claims = decodeJwt(token);
        assert.equal(claims.aud, 'orders');
        assert.deepEqual(claims.act, { sub: 'gateway' });
        const bound = (claims.cnf as Record<string, string>)['x5t#S256'];
        assert.ok(
          bound,
          "the exchanged token is bound (cnf.x5t#S256) to the certificate the gateway's authorizer presented to the STS",
        );

        const fromGateway = await atOrders.check(
          checkRequest({
            method: 'POST',
            path: '/orders',
            host: 'orders',
            headers: { authorization: `Bearer ${token}`, 'baton-request': requestId },
            principal: ids.map.idOf('gateway'),
            certificate: encodeURIComponent(gatewayCert),
          }),
        );
        assert.equal(fromGateway.status?.code, grpcStatus.OK, JSON.stringify(fromGateway));
        const set = headersOf(fromGateway.ok_response?.headers);
        assert.equal(set['baton-caller'], 'gateway');
        assert.equal(set['baton-chain'], 'gateway');
        assert.equal(set['baton-request'], requestId, 'the request id travels from a mesh caller');

        // The same request each time; only the peer the proxy reports changes.
        const postOrders = (peer: Pick<CheckRequestFields, 'principal' | 'certificate'>): Promise<CheckResponse> =>
          atOrders.check(
            checkRequest({
              method: 'POST',
              path: '/orders',
              host: 'orders',
              headers: { authorization: `Bearer ${token}` },
              ...peer,
            }),
          );
        const otherCertificate = await postOrders({
          principal: ids.map.idOf('orders'),
          certificate: encodeURIComponent(ordersCert),
        });
        assert.equal(otherCertificate.status?.code, grpcStatus.UNAUTHENTICATED);
        assert.equal(problemOf(otherCertificate).code, 'BATON_TOKEN_CERT_MISMATCH');

        const principalOnly = await postOrders({ principal: ids.map.idOf('gateway') });
        assert.equal(
          principalOnly.status?.code,
          grpcStatus.OK,
          "a principal alone holds the token's caller to the workload it names",
        );

        const otherPrincipal = await postOrders({ principal: ids.map.idOf('payments') });
        assert.equal(otherPrincipal.status?.code, grpcStatus.UNAUTHENTICATED);
        assert.equal(problemOf(otherPrincipal).code, 'BATON_TOKEN_CALLER_MISMATCH');

        const noPeer = await postOrders({});
        assert.equal(noPeer.status?.code, grpcStatus.UNAUTHENTICATED);
        assert.equal(problemOf(noPeer).code, 'BATON_TOKEN_CERT_REQUIRED');

        const unmapped = await postOrders({ principal: 'spiffe://elsewhere.example/ns/x/sa/gateway' });
        assert.equal(unmapped.status?.code, grpcStatus.PERMISSION_DENIED);
        assert.equal(problemOf(unmapped).code, 'BATON_PEER_UNMAPPED');

        const contradicting = await postOrders({
          principal: ids.map.idOf('payments'),
          certificate: encodeURIComponent(gatewayCert),
        });
        assert.equal(contradicting.status?.code, grpcStatus.INVALID_ARGUMENT);
        assert.equal(problemOf(contradicting).reason, 'peer-principal-mismatch');
      });

      it('checks the whole chain for this target and route: PERMISSION_DENIED with a 403 naming the rule', async () => {
        const ids = mesh.identities!;
        const { token } = await tokenForOrders();
        // The policy accepts gateway → orders for GET and POST on /orders only.
        const response = await atOrders.check(
          checkRequest({
            method: 'DELETE',
            path: '/orders/7',
            host: 'orders',
            headers: { authorization: `Bearer ${token}` },
            principal: ids.map.idOf('gateway'),
            certificate: encodeURIComponent(gatewayCert),
          }),
        );
        assert.equal(response.status?.code, grpcStatus.PERMISSION_DENIED);
        assert.equal(response.denied_response?.status?.code, 403);
        const problem = problemOf(response);
        assert.equal(problem.code, 'BATON_POLICY_DENIED');
        assert.match(problem.rule ?? '', /^orders\.accepts/);
      });
    });

    describe("outbound (the ext_authz filter on the app's calls out: SIDECAR_OUTBOUND, or context_extensions direction: outbound)", () => {
      it('opens the baton-context handle, checks the edge, exchanges at the STS, and answers Authorization: Bearer for the upstream, removing baton-context', async () => {
        const { set: inbound, handle } = await enterGateway(await userToken());
        const response = await atGateway.check(
          checkRequest({
            method: 'POST',
            path: '/orders',
            host: 'orders',
            headers: { 'baton-context': handle, 'baton-subject': 'mallory' },
            contextExtensions: { direction: 'outbound' },
          }),
        );
        assert.equal(response.status?.code, grpcStatus.OK, JSON.stringify(response));
        const set = headersOf(response.ok_response?.headers);
        const token = set.authorization?.replace(/^Bearer /, '') ?? '';
        secrets.push(token);
        const claims = decodeJwt(token);
        assert.equal(claims.sub, 'alice');
        assert.equal(claims.aud, 'orders');
        assert.deepEqual(claims.act, { sub: 'gateway' });
        assert.equal(
          set['baton-request'],
          inbound['baton-request'],
          'the call belongs to the request the handle came with',
        );
        const removed = new Set(response.ok_response?.headers_to_remove);
        assert.ok(removed.has('baton-context') && removed.has('baton-subject'), [...removed].join(', '));
      });

      it('reads the target from the Host (DNS suffix and home namespace cut), or from context_extensions target', async () => {
        const { handle } = await enterGateway(await userToken());
        for (const fields of [
          { host: 'orders.demo.svc.cluster.local:80' },
          { host: 'upstream-cluster', contextExtensions: { direction: 'outbound', target: 'orders' } },
        ]) {
          const response = await atGateway.check(
            checkRequest({
              method: 'GET',
              path: '/orders',
              headers: { 'baton-context': handle },
              ...fields,
              contextExtensions: { direction: 'outbound', ...fields.contextExtensions },
            }),
          );
          assert.equal(response.status?.code, grpcStatus.OK, `${JSON.stringify(fields)}: ${JSON.stringify(response)}`);
          assert.equal(
            decodeJwt(headersOf(response.ok_response?.headers).authorization?.replace(/^Bearer /, '') ?? '').aud,
            'orders',
          );
        }
      });

      it('refuses an edge the policy forbids before asking the STS: PERMISSION_DENIED, 403 naming the rule', async () => {
        const { handle } = await enterGateway(await userToken());
        const response = await atGateway.check(
          checkRequest({
            method: 'POST',
            path: '/charges',
            host: 'payments',
            headers: { 'baton-context': handle },
            contextExtensions: { direction: 'outbound' },
          }),
        );
        assert.equal(response.status?.code, grpcStatus.PERMISSION_DENIED);
        assert.equal(response.denied_response?.status?.code, 403);
        assert.equal(problemOf(response).rule, 'payments.accepts');
      });
    });

    describe('malformed CheckRequests: INVALID_ARGUMENT and a deny, audited', () => {
      it('answers INVALID_ARGUMENT with a 400 denied_response when a field baton needs is missing or wrong', async () => {
        const cases: Array<[string, unknown]> = [
          ['attributes', {}],
          ['request', { attributes: { source: { principal: '' } } }],
          ['method', checkRequest({ method: 'G E T' })],
          ['path', checkRequest({ path: '' })],
          ['direction', checkRequest({ contextExtensions: { direction: 'sideways' } })],
        ];
        for (const [reason, message] of cases) {
          const response = await atGateway.check(message);
          assert.equal(response.status?.code, grpcStatus.INVALID_ARGUMENT, reason);
          assert.equal(response.denied_response?.status?.code, 400, reason);
          const problem = problemOf(response);
          assert.equal(problem.code, 'BATON_AUTHZ_MALFORMED_CHECK', reason);
          assert.equal(problem.reason, reason);
        }
        await waitFor(
          async () =>
            gateway.logs().filter((l) => l.event === 'request_failed' && l.code === 'BATON_AUTHZ_MALFORMED_CHECK')
              .length >= cases.length,
          { what: 'an audit line per malformed check' },
        );
      });

      it('fails the call itself with INVALID_ARGUMENT for bytes that are not a CheckRequest (Envoy, failure_mode_allow: false, denies)', async () => {
        await assert.rejects(
          atGateway.checkBytes(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])),
          (error: { code?: number }) => error.code === grpcStatus.INVALID_ARGUMENT,
        );
      });
    });

    describe('deadlines', () => {
      it("an STS that does not answer within the call's deadline ends the call DEADLINE_EXCEEDED (Envoy denies); the authorizer answers the next call", async () => {
        const { handle } = await enterGateway(await userToken('dora'));
        const sts = mesh.process('sts').child;
        sts.kill('SIGSTOP');
        try {
          const started = Date.now();
          await assert.rejects(
            atGateway.check(
              checkRequest({
                method: 'POST',
                path: '/orders',
                host: 'orders',
                headers: { 'baton-context': handle },
                contextExtensions: { direction: 'outbound' },
              }),
              { deadlineMs: 300 },
            ),
            (error: { code?: number }) => error.code === grpcStatus.DEADLINE_EXCEEDED,
          );
          assert.ok(Date.now() - started < 2_000, 'the deadline, not the exchange timeout, ended the call');
        } finally {
          sts.kill('SIGCONT');
        }
        const token = await userToken();
        const after = await atGateway.check(
          checkRequest({
            method: 'GET',
            path: '/checkout',
            host: 'gateway',
            headers: { authorization: `Bearer ${token}` },
          }),
          { deadlineMs: 5_000 },
        );
        assert.equal(after.status?.code, grpcStatus.OK);
      });
    });

    describe("the sidecar's decision, audit line and metrics", () => {
      it("writes the sidecar's decision line for every check, cached decision or not, and counts decision cache hits", async () => {
        const token = await userToken('carol');
        const before = gateway.logs().filter((l) => l.event === 'decision' && l.subject === 'carol').length;
        for (let i = 0; i < 3; i++) {
          const response = await atGateway.check(
            checkRequest({
              method: 'GET',
              path: '/checkout',
              host: 'gateway',
              headers: { authorization: `Bearer ${token}` },
            }),
          );
          assert.equal(response.status?.code, grpcStatus.OK);
        }
        await waitFor(
          async () =>
            gateway.logs().filter((l) => l.event === 'decision' && l.subject === 'carol').length >= before + 3,
          { what: 'three decision lines' },
        );
        const line = gateway.logs().find((l) => l.event === 'decision' && l.subject === 'carol');
        assert.equal(line?.component, 'sidecar');
        assert.equal(line?.direction, 'inbound');
        assert.equal(line?.rule, 'gateway.accepts.public-api');
        const metrics = await (await request(`http://127.0.0.1:${gateway.admin}/metrics`)).body.text();
        assert.match(metrics, /^baton_authz_decision_cache_total\{result="hit"\} [1-9]\d*$/m);
        assert.match(metrics, /^baton_decisions_total\{rule="gateway\.accepts\.public-api",decision="allow"\} \d+$/m);
        assert.match(metrics, /^baton_build_info\{[^}]*component="authz"/m);
      });

      it('never writes a token or a handle to its output', () => {
        const output = [gateway, orders].map((a) => a.process.stdout() + a.process.stderr()).join('\n');
        assert.ok(secrets.length > 5);
        for (const secret of secrets)
          assert.ok(!output.includes(secret.slice(-24)), "a token or handle in the authorizer's output");
      });
    });
  },
);
