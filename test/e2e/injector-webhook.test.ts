import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import type { AdmissionReviewResponse } from '../../src/injector/admission-review.ts';
import { freePort, waitFor } from '../helpers/net.ts';
import { type RunningProcess, startBaton } from '../helpers/process.ts';
import { envOf, fixture, patchedPod, selfSignedCertificate } from '../helpers/injector.ts';
import { AdmissionReviewInvalidError } from '../../src/injector/errors.ts';
import { NotFoundError, problemType } from '../../src/core/errors.ts';

function servedCertificate(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const raw = socket.getPeerCertificate().raw;
      socket.end();
      resolve(new X509Certificate(raw).subject);
    });
    socket.on('error', reject);
  });
}

describe('baton injector, a real webhook over HTTPS', () => {
  let dir: string;
  let port: number;
  let injector: RunningProcess;
  let agent: Agent;
  let tlsFiles: { cert: string; key: string };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-injector-'));
    const first = selfSignedCertificate(dir, 'first');
    tlsFiles = { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key') };
    copyFileSync(first.cert, tlsFiles.cert);
    copyFileSync(first.key, tlsFiles.key);
    port = await freePort();
    injector = startBaton(
      ['injector', '--tls-cert', tlsFiles.cert, '--tls-key', tlsFiles.key, '--port', String(port)],
      {
        BATON_HOST: '127.0.0.1',
        BATON_TLS__RELOAD_INTERVAL_MS: '100',
        BATON_SIDECAR__IMAGE: 'registry.example/baton:test',
        BATON_SIDECAR__REDIS: 'redis://baton-redis.baton-system.svc:6379',
        // The fixtures' pods run in namespace shop.
        BATON_SIDECAR__SPIFFE__TRUST_DOMAIN: 'mesh.example',
        BATON_SIDECAR__SPIFFE__NAMESPACE: 'shop',
        BATON_SIDECAR__STS_SPIFFE_ID: 'spiffe://mesh.example/ns/baton-system/sa/baton-sts',
      },
    );
    await injector.waitForOutput(/"msg":"injector listening"/);
    // Trust any certificate the test made: the rotation test swaps it underneath.
    agent = new Agent({ connect: { rejectUnauthorized: false } });
  });

  after(async () => {
    await agent?.close();
    await injector?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function admit(name: string): Promise<{ original: Record<string, unknown>; review: AdmissionReviewResponse }> {
    const document = fixture(name);
    const response = await request(`https://127.0.0.1:${port}/mutate`, {
      method: 'POST',
      dispatcher: agent,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(document),
    });
    assert.equal(response.statusCode, 200);
    const review = (await response.body.json()) as AdmissionReviewResponse;
    assert.equal(review.apiVersion, 'admission.k8s.io/v1');
    assert.equal(review.kind, 'AdmissionReview');
    assert.equal(review.response.uid, document.request.uid);
    return { original: document.request.object, review };
  }

  it('answers livez and readyz over TLS', async () => {
    for (const path of ['/livez', '/readyz']) {
      const response = await request(`https://127.0.0.1:${port}${path}`, { dispatcher: agent });
      assert.equal(response.statusCode, 200);
      await response.body.dump();
    }
  });

  it('allows a pod that did not opt in, with no patch', async () => {
    const { review } = await admit('pod-without-opt-in');
    assert.equal(review.response.allowed, true);
    assert.equal(review.response.patch, undefined);
    assert.equal(review.response.patchType, undefined);
  });

  it('honours baton.dev/inject: "false" on the pod', async () => {
    const { review } = await admit('pod-opted-out');
    assert.equal(review.response.allowed, true);
    assert.equal(review.response.patch, undefined);
  });

  it('does not touch pods on UPDATE', async () => {
    const { review } = await admit('pod-update');
    assert.equal(review.response.allowed, true);
    assert.equal(review.response.patch, undefined);
  });

  it('adds a native sidecar with probes, resources and a restricted securityContext to a pod that opted in', async () => {
    const { original, review } = await admit('pod-opt-in');
    assert.equal(review.response.allowed, true);
    assert.equal(review.response.patchType, 'JSONPatch');
    const pod = patchedPod(original, review);
    const [sidecar] = pod.spec.initContainers ?? [];
    assert.equal(sidecar?.name, 'baton-sidecar');
    assert.equal(sidecar?.restartPolicy, 'Always');
    assert.equal(sidecar?.image, 'registry.example/baton:test');
    assert.deepEqual(sidecar?.args, ['sidecar']);
    assert.deepEqual(sidecar?.securityContext, {
      runAsNonRoot: true,
      runAsUser: 10001,
      runAsGroup: 10001,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe'])
      assert.ok(sidecar?.[probe], `${probe} is set`);
    assert.deepEqual((sidecar?.startupProbe as { httpGet: unknown }).httpGet, { path: '/readyz', port: 'baton-admin' });
    assert.deepEqual((sidecar?.livenessProbe as { httpGet: unknown }).httpGet, { path: '/livez', port: 'baton-admin' });
    assert.ok((sidecar?.resources as { requests?: unknown; limits?: unknown }).requests);
    assert.ok((sidecar?.resources as { requests?: unknown; limits?: unknown }).limits);
    assert.deepEqual(sidecar?.ports, [
      { name: 'baton-inbound', containerPort: 7070, protocol: 'TCP' },
      { name: 'baton-admin', containerPort: 7072, protocol: 'TCP' },
    ]);

    const env = envOf(sidecar);
    assert.equal(env.BATON_SERVICE, 'orders');
    assert.equal(env.BATON_STS__CLIENT_ID, 'orders');
    assert.equal(env.BATON_INBOUND__APP, 'http://127.0.0.1:8080');
    assert.equal(env.BATON_HOST, '0.0.0.0');
    // mtls by default: exchanged tokens are bound to the pod's certificate and never shared through Redis,
    // so no Redis credential or seal key reaches the pod (plaintext mode: test/injector/pod-patch.test.ts).
    assert.equal(
      Object.keys(env).some((name) => name.startsWith('BATON_REDIS')),
      false,
    );
    assert.equal(
      pod.spec.volumes?.some((v) => v.name === 'baton-redis'),
      false,
    );
    // mtls by default: the certificate is the STS credential; no secret reaches the pod.
    assert.equal(
      sidecar?.env?.some((e) => /SECRET/.test(e.name)),
      false,
    );
    assert.equal(env.BATON_STS__AUTH_METHOD, 'tls_client_auth');
    assert.equal(env.BATON_TRANSPORT__MODE, 'mtls');
    assert.equal(env.BATON_STS__ISSUER, 'https://baton-sts.baton-system.svc:7000');
    assert.equal(env.BATON_POLICY__URL, 'https://baton-policy-server.baton-system.svc:7100');
    assert.equal(env.BATON_STS__SPIFFE_ID, 'spiffe://mesh.example/ns/baton-system/sa/baton-sts');
    assert.equal(env.BATON_SPIFFE__TRUST_DOMAIN, 'mesh.example');
    assert.equal(env.BATON_SPIFFE__NAMESPACE, 'shop');
    assert.equal(env.BATON_INBOUND__CLIENT_CERTIFICATE, 'required');
    // csi-driver-spiffe by default, as cert-manager documents it, readable by the sidecar's group.
    assert.deepEqual(
      pod.spec.volumes?.find((v) => v.name === 'baton-identity'),
      {
        name: 'baton-identity',
        csi: {
          driver: 'spiffe.csi.cert-manager.io',
          readOnly: true,
          volumeAttributes: { 'spiffe.csi.cert-manager.io/fs-group': '10001' },
        },
      },
    );
    assert.deepEqual((sidecar?.volumeMounts as unknown[]).at(-1), {
      name: 'baton-identity',
      mountPath: '/var/run/secrets/spiffe.io',
      readOnly: true,
    });
    assert.deepEqual(
      [env.BATON_IDENTITY__CERT_FILE, env.BATON_IDENTITY__KEY_FILE, env.BATON_IDENTITY__BUNDLE_FILE],
      ['/var/run/secrets/spiffe.io/tls.crt', '/var/run/secrets/spiffe.io/tls.key', '/var/run/secrets/spiffe.io/ca.crt'],
    );
    assert.equal(pod.spec.initContainers?.length, 1, 'no helper: the CSI driver keeps the files fresh');

    const [app] = pod.spec.containers;
    assert.deepEqual(envOf(app), { LOG_FORMAT: 'json', BATON_OUTBOUND: 'http://127.0.0.1:7071' });
    assert.equal(pod.metadata.annotations?.['baton.dev/status'], 'injected');
    assert.equal(pod.metadata.labels?.['baton.dev/service'], 'orders');
    assert.ok(pod.spec.volumes?.some((v) => v.name === 'baton-policy-key'));
    assert.ok(
      pod.spec.volumes?.some((v) => v.name === 'kube-api-access-x7k2p'),
      'existing volumes are kept',
    );
  });

  it('runs spiffe-helper before the sidecar, on the SPIRE agent socket from the node, when the pod asks for spiffe-helper', async () => {
    const { original, review } = await admit('pod-spiffe-helper');
    const pod = patchedPod(original, review);
    const [helper, sidecar] = pod.spec.initContainers ?? [];
    assert.equal(helper?.name, 'baton-spiffe-helper');
    assert.equal(helper?.restartPolicy, 'Always');
    assert.deepEqual(helper?.args, ['-config', '/etc/spiffe-helper/helper.conf']);
    assert.equal(sidecar?.name, 'baton-sidecar');
    const volume = (name: string) =>
      pod.spec.volumes?.find((v) => v.name === name) as Record<string, unknown> | undefined;
    assert.deepEqual(volume('baton-spire-agent-socket'), {
      name: 'baton-spire-agent-socket',
      hostPath: { path: '/run/spire/agent-sockets', type: 'Directory' },
    });
    assert.deepEqual(volume('baton-identity'), {
      name: 'baton-identity',
      emptyDir: { medium: 'Memory', sizeLimit: '1Mi' },
    });
    const env = envOf(sidecar);
    assert.deepEqual(
      [env.BATON_IDENTITY__CERT_FILE, env.BATON_IDENTITY__KEY_FILE, env.BATON_IDENTITY__BUNDLE_FILE],
      [
        '/var/run/secrets/spiffe.io/svid.pem',
        '/var/run/secrets/spiffe.io/svid_key.pem',
        '/var/run/secrets/spiffe.io/svid_bundle.pem',
      ],
    );
    const config = pod.metadata.annotations?.['baton.dev/spiffe-helper-config'] ?? '';
    assert.match(config, /^agent_address = "\/spiffe-workload-api\/spire-agent\.sock"$/m);
    assert.match(config, /^daemon_mode = true$/m);
  });

  it("mounts the SPIRE agent socket with the SPIFFE CSI driver for spiffe-csi, and overrides an author's helper config", async () => {
    const { original, review } = await admit('pod-spiffe-csi');
    const pod = patchedPod(original, review);
    assert.deepEqual(
      pod.spec.initContainers?.map((c) => c.name),
      ['baton-spiffe-helper', 'baton-sidecar'],
    );
    assert.deepEqual(
      pod.spec.volumes?.find((v) => v.name === 'baton-spire-agent-socket'),
      { name: 'baton-spire-agent-socket', csi: { driver: 'csi.spiffe.io', readOnly: true } },
    );
    assert.doesNotMatch(pod.metadata.annotations?.['baton.dev/spiffe-helper-config'] ?? '', /attacker/);
    assert.equal(envOf(pod.spec.initContainers?.[1]).BATON_SERVICE, 'payments');
  });

  it('gives an entrypoint behind an ingress the listener it asks for, and says so in a warning', async () => {
    const { original, review } = await admit('pod-entrypoint-behind-ingress');
    const pod = patchedPod(original, review);
    const sidecar = pod.spec.initContainers?.[0];
    const env = envOf(sidecar);
    assert.equal(env.BATON_INBOUND__CLIENT_CERTIFICATE, 'optional');
    assert.equal(env.BATON_INBOUND__PLAINTEXT_PORT, '7080');
    assert.ok(
      (sidecar?.ports as Array<{ name: string; containerPort: number }>).some(
        (p) => p.name === 'baton-plaintext' && p.containerPort === 7080,
      ),
    );
    assert.ok(review.response.warnings?.some((w) => w.includes('baton.dev/plaintext-port')));
    assert.ok(review.response.warnings?.some((w) => w.includes('baton.dev/client-certificate')));
  });

  it('injects a pod in any labelled namespace, naming its service service.namespace outside the home namespace', async () => {
    const { original, review } = await admit('pod-in-another-namespace');
    assert.equal(review.response.allowed, true, review.response.status?.message);
    const sidecar = patchedPod(original, review).spec.initContainers?.find((c) => c.name === 'baton-sidecar');
    assert.match(envOf(sidecar).BATON_SERVICE ?? '', /^[a-z0-9-]+\.billing$/);
    assert.equal(envOf(sidecar).BATON_SPIFFE__NAMESPACE, 'shop', "the home namespace stays the mesh's");
  });

  it('refuses to inject twice', async () => {
    const { review } = await admit('pod-already-injected');
    assert.equal(review.response.allowed, true);
    assert.equal(review.response.patch, undefined);
  });

  it('puts the sidecar first among existing init containers', async () => {
    const { original, review } = await admit('pod-with-init-containers');
    const pod = patchedPod(original, review);
    assert.deepEqual(
      pod.spec.initContainers?.map((c) => c.name),
      ['baton-sidecar', 'migrate'],
    );
    assert.equal(envOf(pod.spec.initContainers?.[0]).BATON_INBOUND__APP, 'http://127.0.0.1:9090');
    assert.equal(
      envOf(pod.spec.initContainers?.[1]).BATON_OUTBOUND,
      undefined,
      'init containers are not app containers',
    );
  });

  it('wires every app container of a multi-container pod and ignores an identity annotation', async () => {
    const { original, review } = await admit('pod-with-several-containers');
    const pod = patchedPod(original, review);
    const [gateway, shipper] = pod.spec.containers;
    // The author's own HTTP_PROXY is kept; baton adds the rest.
    assert.equal(envOf(gateway).HTTP_PROXY, 'http://corporate-proxy:3128');
    assert.equal(envOf(gateway).http_proxy, 'http://127.0.0.1:7071');
    assert.equal(envOf(gateway).NODE_USE_ENV_PROXY, '1', "Node's fetch reads HTTP_PROXY only with it");
    assert.equal(envOf(gateway).BATON_OUTBOUND, 'http://127.0.0.1:7071');
    assert.equal(envOf(shipper).HTTP_PROXY, 'http://127.0.0.1:7071');
    assert.equal(envOf(shipper).NO_PROXY, 'localhost,127.0.0.1,::1');
    const sidecarEnv = envOf(pod.spec.initContainers?.[0]);
    assert.equal(sidecarEnv.BATON_SERVICE, 'gateway', 'the ServiceAccount, not baton.dev/service: payments');
    assert.equal(sidecarEnv.BATON_INBOUND__FORWARD_TOKEN, 'true');
    assert.equal(sidecarEnv.BATON_INBOUND__APP, 'http://127.0.0.1:8000');
    assert.ok(review.response.warnings?.some((w) => w.includes('baton.dev/service')));
    assert.ok(pod.spec.volumes?.some((v) => v.name === 'logs'));
  });

  it('denies a pod whose baton annotations are malformed, saying why', async () => {
    const { review } = await admit('pod-with-bad-port-annotation');
    assert.equal(review.response.allowed, false);
    assert.equal(review.response.status?.code, 422);
    assert.match(review.response.status?.message ?? '', /baton\.dev\/inbound-port/);
  });

  it('answers a body that is not an AdmissionReview with a problem document', async () => {
    const response = await request(`https://127.0.0.1:${port}/mutate`, {
      method: 'POST',
      dispatcher: agent,
      headers: { 'content-type': 'application/json' },
      body: '{"kind":"Pod"}',
    });
    assert.equal(response.statusCode, 400);
    assert.equal(response.headers['content-type'], 'application/problem+json; charset=utf-8');
    const problem = (await response.body.json()) as { code: string; type: string };
    assert.equal(problem.code, AdmissionReviewInvalidError.code);
    assert.equal(problem.type, problemType(AdmissionReviewInvalidError.code));
    const garbled = await request(`https://127.0.0.1:${port}/mutate`, {
      method: 'POST',
      dispatcher: agent,
      headers: { 'content-type': 'application/json' },
      body: '{',
    });
    assert.equal(garbled.statusCode, 400);
    assert.equal(((await garbled.body.json()) as { code: string }).code, AdmissionReviewInvalidError.code);
    const missing = await request(`https://127.0.0.1:${port}/nowhere`, { dispatcher: agent });
    assert.equal(missing.statusCode, 404);
    assert.equal(((await missing.body.json()) as { code: string }).code, NotFoundError.code);
  });

  it('serves a rotated certificate without a restart', async () => {
    assert.equal(
      await waitFor(() => servedCertificate(port), { timeoutMs: 5_000, what: 'the first certificate' }),
      'CN=first',
    );
    const second = selfSignedCertificate(dir, 'second');
    // The kubelet swaps both files of a Secret at once; copying key then cert is the harder order.
    copyFileSync(second.key, tlsFiles.key);
    copyFileSync(second.cert, tlsFiles.cert);
    await waitFor(async () => (await servedCertificate(port)) === 'CN=second', {
      timeoutMs: 5_000,
      what: 'the rotated certificate',
    });
    // The log line may reach our pipe a moment after the new certificate is served.
    await waitFor(async () => /"event":"tls_reloaded"/.test(injector.stdout()), {
      timeoutMs: 5_000,
      what: 'the tls_reloaded log line',
    });
  });
});
