import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import fc from 'fast-check';
import { loadConfig } from '../../src/config/load.ts';
import { reviewAdmission } from '../../src/injector/admission-review.ts';
import { checkInjectorConfig, InjectorConfigSchema } from '../../src/injector/config.ts';
import { planInjection } from '../../src/injector/pod-patch.ts';
import type { Pod } from '../../src/injector/kubernetes-types.ts';
import { SidecarConfigSchema } from '../../src/sidecar/config.ts';
import { withContract } from '../helpers/deploy.ts';
import { envOf, fixture, patchedPod } from '../helpers/injector.ts';
import { createServiceMap } from '../../src/identity/service-map.ts';
import { AdmissionReviewInvalidError } from '../../src/injector/errors.ts';

const template = Value.Default(InjectorConfigSchema.properties.sidecar, {}) as Parameters<typeof planInjection>[1];

function optedIn(spec: Record<string, unknown>, annotations: Record<string, string> = {}): Pod {
  return {
    metadata: { name: 'p', annotations: { 'baton.dev/inject': 'true', ...annotations } },
    spec: spec as unknown as Pod['spec'],
  };
}

describe('pod patch planning', () => {
  it('takes the workload identity from the ServiceAccount, never from an annotation', () => {
    const plan = planInjection(
      optedIn(
        { serviceAccountName: 'orders', containers: [{ name: 'app', image: 'x' }] },
        { 'baton.dev/service': 'payments' },
      ),
      template,
    );
    assert.equal(plan.outcome, 'inject');
    assert.ok(plan.outcome === 'inject' && plan.serviceAccount === 'orders');
    assert.ok(plan.outcome === 'inject' && plan.warnings.some((w) => w.includes('baton.dev/service is ignored')));
  });

  it('falls back to the default ServiceAccount and warns about it', () => {
    const plan = planInjection(optedIn({ containers: [{ name: 'app', image: 'x' }] }), template);
    assert.ok(plan.outcome === 'inject' && plan.serviceAccount === 'default');
    assert.ok(plan.outcome === 'inject' && plan.warnings.some((w) => w.includes('"default" ServiceAccount')));
  });

  it('refuses a hostNetwork pod', () => {
    assert.equal(
      planInjection(optedIn({ hostNetwork: true, containers: [{ name: 'app', image: 'x' }] }), template).outcome,
      'deny',
    );
  });

  it('refuses an app container port that collides with a sidecar port', () => {
    const plan = planInjection(
      optedIn({ containers: [{ name: 'app', image: 'x', ports: [{ containerPort: 8080 }, { containerPort: 7071 }] }] }),
      template,
    );
    assert.equal(plan.outcome, 'deny');
  });

  it('refuses a pod that already uses a volume name baton reserves', () => {
    const plan = planInjection(
      optedIn({ containers: [{ name: 'app', image: 'x' }], volumes: [{ name: 'baton-tmp', emptyDir: {} }] }),
      template,
    );
    assert.equal(plan.outcome, 'deny');
  });

  it('refuses a malformed review with a stable code', () => {
    assert.throws(
      () =>
        reviewAdmission(
          { apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: { uid: 'u' } },
          template,
        ),
      { code: AdmissionReviewInvalidError.code },
    );
    assert.throws(
      () =>
        reviewAdmission(
          {
            apiVersion: 'admission.k8s.io/v1',
            kind: 'AdmissionReview',
            request: { uid: 'u', kind: { kind: 'Pod' }, operation: 'CREATE', object: { spec: {} } },
          },
          template,
        ),
      {
        code: AdmissionReviewInvalidError.code,
      },
    );
  });

  it('produces a schema-valid pod with exactly one sidecar for any mix of containers, and never injects twice', () => {
    const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}[a-z0-9]$/).filter((n) => !n.startsWith('baton'));
    const envVar = fc.record({
      name: fc.constantFrom('BATON_OUTBOUND', 'HTTP_PROXY', 'LOG_LEVEL', 'PORT'),
      value: fc.string({ maxLength: 8 }),
    });
    const container = fc.record({
      name,
      image: fc.constant('registry.example/app:1'),
      env: fc.option(fc.uniqueArray(envVar, { selector: (e) => e.name, maxLength: 3 }), { nil: undefined }),
      ports: fc.option(fc.array(fc.record({ containerPort: fc.integer({ min: 8000, max: 8999 }) }), { maxLength: 2 }), {
        nil: undefined,
      }),
    });
    const pod = fc.record({
      containers: fc.uniqueArray(container, { selector: (c) => c.name, minLength: 1, maxLength: 4 }),
      initContainers: fc.option(fc.uniqueArray(container, { selector: (c) => c.name, maxLength: 2 }), {
        nil: undefined,
      }),
      volumes: fc.option(fc.array(fc.record({ name, emptyDir: fc.constant({}) }), { maxLength: 2 }), {
        nil: undefined,
      }),
      httpProxy: fc.boolean(),
      svidSource: fc.constantFrom('csi-driver-spiffe', 'spiffe-helper', 'spiffe-csi'),
      labels: fc.option(fc.constant({ app: 'x' }), { nil: undefined }),
    });
    fc.assert(
      fc.property(pod, (generated) => {
        const { httpProxy, svidSource, labels, ...rest } = generated;
        const spec = JSON.parse(JSON.stringify({ serviceAccountName: 'orders', ...rest })) as Record<string, unknown>;
        const original = {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: {
            name: 'p',
            ...(labels === undefined ? {} : { labels }),
            annotations: {
              'baton.dev/inject': 'true',
              'baton.dev/http-proxy': String(httpProxy),
              'baton.dev/svid-source': svidSource,
            },
          },
          spec,
        };
        const review = (object: unknown) =>
          reviewAdmission(
            {
              apiVersion: 'admission.k8s.io/v1',
              kind: 'AdmissionReview',
              request: { uid: 'u', kind: { kind: 'Pod' }, operation: 'CREATE', object },
            },
            template,
          ).review;
        const first = review(original);
        assert.equal(first.response.allowed, true);
        const pod = patchedPod(original, first);
        const sidecars = (pod.spec.initContainers ?? []).filter((c) => c.name === 'baton-sidecar');
        assert.equal(sidecars.length, 1);
        // The identity helper, when there is one, first; then the sidecar; then the author's init containers.
        const helpers = svidSource === 'csi-driver-spiffe' ? [] : ['baton-spiffe-helper'];
        assert.deepEqual(
          pod.spec.initContainers?.slice(0, helpers.length + 1).map((c) => c.name),
          [...helpers, 'baton-sidecar'],
        );
        assert.equal((pod.spec.volumes ?? []).filter((v) => v.name === 'baton-identity').length, 1);
        for (const c of pod.spec.containers) assert.equal(c.env?.filter((e) => e.name === 'BATON_OUTBOUND').length, 1);
        const again = review(pod);
        assert.equal(again.response.patch, undefined);
      }),
      { numRuns: 150 },
    );
  });

  it('leaves a pod that did not opt in untouched', () => {
    const { review } = reviewAdmission(fixture('pod-without-opt-in'), template);
    assert.deepEqual(review.response, { uid: '0b7a1c52-1d8e-4f7a-9b0c-3e2f1a6d5c01', allowed: true });
  });
});

describe('workload identity in the injected pod', () => {
  const mtls = Value.Default(InjectorConfigSchema.properties.sidecar, {
    spiffe: { trustDomain: 'mesh.example', namespace: 'shop' },
  }) as Parameters<typeof planInjection>[1];
  const plaintext = Value.Default(InjectorConfigSchema.properties.sidecar, {
    transport: { mode: 'plaintext' },
    spiffe: { namespace: 'shop' },
    stsIssuer: 'http://baton-sts.baton-system.svc:7000',
    policyUrl: 'http://baton-policy-server.baton-system.svc:7100',
  }) as Parameters<typeof planInjection>[1];
  const review = (
    annotations: Record<string, string>,
    sidecarTemplate: Parameters<typeof planInjection>[1],
    namespace = 'shop',
  ) => {
    const original = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p', namespace, annotations: { 'baton.dev/inject': 'true', ...annotations } },
      spec: { serviceAccountName: 'orders', containers: [{ name: 'app', image: 'x' }] },
    };
    const { review: answer } = reviewAdmission(
      {
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: { uid: 'u', namespace, kind: { kind: 'Pod' }, operation: 'CREATE', object: original },
      },
      sidecarTemplate,
    );
    return { answer, pod: answer.response.allowed ? patchedPod(original, answer) : undefined };
  };
  /** The sidecar's configuration as baton's own loader reads it from the injected environment. */
  const loadedConfig = (pod: NonNullable<ReturnType<typeof review>['pod']>) => {
    const sidecar = pod.spec.initContainers?.find((c) => c.name === 'baton-sidecar');
    // A Secret reference resolves at run time; stand in a value for it.
    const env = Object.fromEntries((sidecar?.env ?? []).map((e) => [e.name, e.value ?? 'from-a-secret-0001']));
    return loadConfig(withContract(SidecarConfigSchema, 'sidecar'), { env }) as unknown as {
      transport: { mode: string };
      identity: Record<string, string>;
      spiffe: { trustDomain: string; namespace: string };
      sts: { authMethod: string; clientSecret?: string };
      service: string;
    };
  };

  for (const source of ['csi-driver-spiffe', 'spiffe-helper', 'spiffe-csi']) {
    it(`gives the sidecar a configuration baton loads, with the contract's identity keys (${source})`, () => {
      const { pod } = review({ 'baton.dev/svid-source': source }, mtls);
      assert.ok(pod);
      const config = loadedConfig(pod);
      assert.equal(config.service, 'orders');
      assert.equal(config.transport.mode, 'mtls');
      assert.equal(config.sts.authMethod, 'tls_client_auth');
      assert.equal(config.sts.clientSecret, undefined);
      assert.deepEqual(config.spiffe, {
        trustDomain: 'mesh.example',
        namespace: 'shop',
        template: '/ns/{namespace}/sa/{service}',
        ids: {},
      });
      // The files the sidecar reads are the ones its identity source writes, in the volume it mounts.
      const helper = pod.spec.initContainers?.find((c) => c.name === 'baton-spiffe-helper');
      const names =
        source === 'csi-driver-spiffe'
          ? ['tls.crt', 'tls.key', 'ca.crt']
          : ['svid.pem', 'svid_key.pem', 'svid_bundle.pem'];
      assert.deepEqual(
        [config.identity.certFile, config.identity.keyFile, config.identity.bundleFile],
        names.map((n) => `/var/run/secrets/spiffe.io/${n}`),
      );
      if (helper === undefined) {
        assert.equal(source, 'csi-driver-spiffe');
      } else {
        const conf = pod.metadata.annotations?.['baton.dev/spiffe-helper-config'] ?? '';
        assert.match(conf, /^cert_dir = "\/var\/run\/secrets\/spiffe\.io"$/m);
        for (const [key, name] of [
          ['svid_file_name', names[0]],
          ['svid_key_file_name', names[1]],
          ['svid_bundle_file_name', names[2]],
        ])
          assert.match(conf, new RegExp(`^${key} = "${name}"$`, 'm'));
        const configVolume = pod.spec.volumes?.find((v) => v.name === 'baton-spiffe-helper-config') as
          { downwardAPI?: { items: Array<{ path: string; fieldRef: { fieldPath: string } }> } } | undefined;
        assert.deepEqual(configVolume?.downwardAPI?.items, [
          { path: 'helper.conf', fieldRef: { fieldPath: "metadata.annotations['baton.dev/spiffe-helper-config']" } },
        ]);
      }
    });
  }

  it("in plaintext mode mounts no identity, runs no helper, and keeps the client secret from the ServiceAccount's Secret", () => {
    const { pod, answer } = review({ 'baton.dev/svid-source': 'spiffe-helper' }, plaintext);
    assert.ok(pod);
    const config = loadedConfig(pod);
    assert.equal(config.transport.mode, 'plaintext');
    assert.equal(config.sts.authMethod, 'client_secret_basic');
    assert.deepEqual(
      pod.spec.initContainers?.map((c) => c.name),
      ['baton-sidecar'],
    );
    assert.equal(
      pod.spec.volumes?.some((v) => v.name.startsWith('baton-identity') || v.name.startsWith('baton-spire')),
      false,
    );
    const secret = pod.spec.initContainers?.[0]?.env?.find((e) => e.name === 'BATON_STS__CLIENT_SECRET');
    assert.deepEqual(secret?.valueFrom, { secretKeyRef: { name: 'baton-client-orders', key: 'clientSecret' } });
    assert.ok(answer.response.warnings?.some((w) => w.includes('baton.dev/svid-source is ignored')));
  });

  it('in plaintext mode with Redis gives the sidecar container, and no other, its own Redis user, password and seal key', () => {
    const withRedis = { ...plaintext, redis: 'redis://baton-redis.baton-system.svc:6379' } as Parameters<
      typeof planInjection
    >[1];
    const { pod } = review({}, withRedis);
    assert.ok(pod);
    const sidecar = pod.spec.initContainers?.find((c) => c.name === 'baton-sidecar');
    const env = Object.fromEntries((sidecar?.env ?? []).map((e) => [e.name, e.value]));
    assert.equal(env.BATON_REDIS__URL, 'redis://baton-redis.baton-system.svc:6379');
    assert.equal(env.BATON_REDIS__USERNAME, 'sidecar-orders');
    assert.equal(env.BATON_REDIS__PASSWORD_FILE, '/etc/baton/redis/password');
    assert.equal(env.BATON_REDIS__SEAL_KEY_FILE, '/etc/baton/redis/seal-key');
    const redisVolume = pod.spec.volumes?.find((v) => v.name === 'baton-redis') as
      { secret?: { secretName: string } } | undefined;
    assert.equal(redisVolume?.secret?.secretName, 'baton-redis-orders');
    assert.deepEqual(
      (sidecar?.volumeMounts as Array<{ name: string; mountPath: string; readOnly?: boolean }>).find(
        (m) => m.name === 'baton-redis',
      ),
      { name: 'baton-redis', mountPath: '/etc/baton/redis', readOnly: true },
    );
    for (const container of pod.spec.containers) {
      assert.ok(
        !((container.volumeMounts ?? []) as Array<{ name: string }>).some((m) => m.name === 'baton-redis'),
        `${container.name} does not mount the Redis secret`,
      );
      assert.ok(
        !(container.env ?? []).some((e) => e.name.startsWith('BATON_REDIS')),
        `${container.name} is not told about Redis`,
      );
    }
    // The same template in mtls mode: bound tokens are never shared, so nothing of Redis reaches the pod.
    const mtlsPod = review({}, { ...mtls, redis: 'redis://baton-redis.baton-system.svc:6379' } as Parameters<
      typeof planInjection
    >[1]).pod;
    assert.equal(
      mtlsPod?.spec.volumes?.some((v) => v.name === 'baton-redis'),
      false,
    );
    assert.equal(
      mtlsPod?.spec.initContainers?.some((c) => (c.env ?? []).some((e) => e.name.startsWith('BATON_REDIS'))),
      false,
    );
  });

  it('refuses an unknown identity source and a bad client-certificate setting', () => {
    assert.equal(review({ 'baton.dev/svid-source': 'vault' }, mtls).answer.response.allowed, false);
    assert.equal(review({ 'baton.dev/client-certificate': 'none' }, mtls).answer.response.allowed, false);
    assert.equal(
      review({ 'baton.dev/plaintext-port': '7071' }, mtls).answer.response.allowed,
      false,
      'the plaintext port may not be a sidecar port',
    );
  });

  it('injects a pod in any namespace, named service.namespace outside the home namespace, with the ID its certificate carries', () => {
    for (const template of [mtls, plaintext]) {
      const { pod } = review({}, template, 'billing');
      assert.ok(pod, template.transport.mode);
      const config = loadedConfig(pod);
      assert.equal(config.service, 'orders.billing');
      assert.equal(
        envOf(pod.spec.initContainers?.find((c) => c.name === 'baton-sidecar')).BATON_STS__CLIENT_ID,
        'orders.billing',
      );
      assert.equal(pod.metadata.labels?.['baton.dev/service'], 'orders.billing');
      if (template === mtls)
        assert.equal(
          createServiceMap(config.spiffe as Parameters<typeof createServiceMap>[0]).idOf(config.service),
          'spiffe://mesh.example/ns/billing/sa/orders',
          'the ID csi-driver-spiffe issues in billing',
        );
    }
    assert.equal(
      loadedConfig(review({}, mtls, 'shop').pod as NonNullable<ReturnType<typeof review>['pod']>).service,
      'orders',
      'unqualified at home',
    );
  });

  it('denies a pod outside the home namespace only under a SPIFFE rule that cannot name one', () => {
    const flat = { ...mtls, spiffe: { ...mtls.spiffe, template: '/svc/{service}' } };
    assert.equal(review({}, flat, 'billing').answer.response.allowed, false);
    assert.match(
      review({}, flat, 'billing').answer.response.status?.message ?? '',
      /names services of namespace shop only/,
    );
    assert.equal(review({}, flat, 'shop').answer.response.allowed, true);
  });

  it('refuses an http STS or policy URL in mtls mode, at config load', () => {
    const config = loadConfig(InjectorConfigSchema, {
      env: {
        BATON_TLS__CERT: '/c',
        BATON_TLS__KEY: '/k',
        BATON_SIDECAR__STS_ISSUER: 'http://baton-sts.baton-system.svc:7000',
      },
    });
    assert.throws(() => checkInjectorConfig(config, 'test'), {
      code: 'BATON_CONFIG_INVALID',
      key: 'sidecar.stsIssuer',
    });
    const fine = loadConfig(InjectorConfigSchema, { env: { BATON_TLS__CERT: '/c', BATON_TLS__KEY: '/k' } });
    assert.doesNotThrow(() => checkInjectorConfig(fine, 'test'));
  });
});
