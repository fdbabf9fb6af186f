import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { parse, parseAllDocuments } from 'yaml';
import { loadPolicyPath } from '../../src/policy/language/load.ts';
import type { TSchema } from '@sinclair/typebox';
import { PolicyServerConfigSchema } from '../../src/policy/distribution/config.ts';
import { envName } from '../../src/config/variables.ts';
import { loadStsConfig, StsConfigSchema } from '../../src/sts/config.ts';
import { createServiceMap } from '../../src/identity/service-map.ts';
import { chartSchemaText } from '../../scripts/chart-schema.ts';
import { checkInjectorConfig, InjectorConfigSchema } from '../../src/injector/config.ts';
import { loadSidecarConfig, SidecarExternalIssuerSchema } from '../../src/sidecar/config.ts';
import { createAccessTokenVerifier } from '../../src/token/verifier.ts';
import { createLocalKeySource } from '../../src/token/key-source.ts';
import { profileOf } from '../../src/token/issuer-profile-config.ts';
import { createSigner, nowSec } from '../helpers/token.ts';
import { admitPod, renderedInjectorConfig } from '../helpers/injector.ts';
import { loadConfig } from '../../src/config/load.ts';
import { Value } from '@sinclair/typebox/value';
import {
  admittedTo,
  assertOnWritableEmptyDir,
  helmLint,
  helmTemplate,
  type KubernetesObject,
  selects,
  validateKubernetesObject,
} from '../helpers/kubernetes-schema.ts';
import { withContract } from '../helpers/deploy.ts';

/** Every BATON_* name a schema reads: one per key, at every depth (an object may be set whole). */
function envNames(schema: TSchema, path: string[] = []): Set<string> {
  const names = new Set<string>(path.length > 0 ? [envName(path)] : []);
  for (const [key, child] of Object.entries((schema as { properties?: Record<string, TSchema> }).properties ?? {}))
    for (const name of envNames(child, [...path, key])) names.add(name);
  return names;
}
const envNamesIn = (text: string): string[] =>
  [...text.matchAll(/name: (BATON_[A-Z0-9_]+)/g)].map((m) => m[1] as string);

const CHART = fileURLToPath(new URL('../../helm/baton-mesh/', import.meta.url));
const TEMPLATES = join(CHART, 'templates');
const read = (path: string): string => readFileSync(join(CHART, path), 'utf8');
const templates = readdirSync(TEMPLATES).map((name) => ({ name, text: readFileSync(join(TEMPLATES, name), 'utf8') }));
const manifests = templates.filter((t) => t.name.endsWith('.yaml'));
const values = parse(read('values.yaml')) as Record<string, unknown>;
/** Value sets the chart must lint and render with, each as helm arguments. */
const VALUE_SETS: Readonly<Record<string, readonly string[]>> = {
  defaults: [],
  'existing webhook Secret, external Redis': [
    '--set',
    'injector.tls.mode=existingSecret',
    '--set',
    'injector.tls.existingSecret=t',
    '--set',
    'injector.tls.caBundle=Y2E=',
    '--set',
    'redis.enabled=false',
    '--set',
    'redis.url=redis://r:6379',
  ],
  plaintext: ['--set', 'transport.mode=plaintext', '--set', 'sts.clientsSecret=baton-sts-clients'],
  'SPIRE through spiffe-helper': ['--set', 'identity.source=spiffe-helper'],
  'SPIRE through the SPIFFE CSI driver': ['--set', 'identity.source=spiffe-csi'],
  'monitoring on, meshed namespaces listed': [
    '--set',
    'podMonitor.enabled=true',
    '--set',
    'networkPolicy.meshedNamespaces={shop,web}',
  ],
  'IdP presets and introspection': [
    '--set-json',
    'sts.externalIssuers=[{"issuer":"https://kc.example/realms/shop","profile":"keycloak","discovery":true},{"issuer":"https://idp.example","audience":"gateway","introspection":{"clientId":"baton","clientSecretFrom":{"secretName":"idp","key":"secret"}}}]',
  ],
  'network policies and PDBs off': [
    '--set',
    'networkPolicy.enabled=false',
    '--set',
    'podDisruptionBudget.enabled=false',
  ],
};
const validateValues = new Ajv({ strict: true, allErrors: true }).compile(
  JSON.parse(read('values.schema.json')) as object,
);

/** The template with its actions gone: whole-line actions dropped, inline ones replaced by a scalar. */
function stripActions(text: string): string {
  return text
    .replace(/\{\{\/\*[\s\S]*?\*\/\}\}/g, '')
    .split('\n')
    .filter((line) => line.replace(/\{\{-?[\s\S]*?-?\}\}/g, '').trim() !== '' || !line.includes('{{'))
    .map((line) => line.replace(/\{\{-?[\s\S]*?-?\}\}/g, 'placeholder'))
    .join('\n');
}

describe('helm/baton-mesh', () => {
  it('has a Chart.yaml for a v2 application chart that needs native sidecars', () => {
    const chart = parse(read('Chart.yaml')) as Record<string, string>;
    assert.equal(chart.apiVersion, 'v2');
    assert.equal(chart.name, 'baton-mesh', 'named after the npm package');
    assert.match(chart.version ?? '', /^\d+\.\d+\.\d+$/);
    assert.match(chart.kubeVersion ?? '', /1\.29/);
  });

  it('names resources and selectors as it did when the chart was called baton, so a release upgrades in place', () => {
    const objects = helmTemplate(CHART, [], { release: 'baton', namespace: 'baton-system' });
    const sts = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'baton-sts');
    assert.ok(sts, 'the STS Deployment is still baton-sts');
    // A Deployment's selector is immutable: a changed one would make `helm upgrade` fail.
    const selector = (sts.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels;
    assert.deepEqual(selector, {
      'app.kubernetes.io/name': 'baton-sts',
      'app.kubernetes.io/instance': 'baton',
      'app.kubernetes.io/component': 'sts',
    });
    const other = helmTemplate(CHART, [], { release: 'shop', namespace: 'baton-system' });
    assert.ok(
      other.some((o) => o.kind === 'Deployment' && o.metadata.name === 'shop-baton-sts'),
      'another release prefixes baton-, not baton-mesh-',
    );
  });

  it('ships values.yaml that its draft-07 values.schema.json accepts', () => {
    assert.equal(
      (JSON.parse(read('values.schema.json')) as { $schema: string }).$schema,
      'http://json-schema.org/draft-07/schema#',
    );
    assert.ok(validateValues(values), JSON.stringify(validateValues.errors, null, 2));
  });

  it('refuses values that would weaken the pods or misconfigure the webhook', () => {
    const bad = [
      { ...values, containerSecurityContext: { allowPrivilegeEscalation: true, readOnlyRootFilesystem: true } },
      { ...values, podSecurityContext: { runAsNonRoot: false } },
      { ...values, injector: { ...(values.injector as object), failurePolicy: 'Sometimes' } },
      {
        ...values,
        injector: { ...(values.injector as object), tls: { mode: 'existingSecret', existingSecret: '', caBundle: '' } },
      },
      { ...values, sts: { ...(values.sts as object), replicas: 0 } },
      { ...values, redis: { ...(values.redis as object), image: 'redis:latest' } },
      // Credentials never go in the URL: each client has its own ACL user and password file.
      { ...values, redis: { ...(values.redis as object), enabled: false, url: 'redis://default:hunter2@r:6379' } },
      { ...values, surprise: true },
    ];
    for (const candidate of bad)
      assert.equal(validateValues(candidate), false, JSON.stringify(candidate).slice(0, 200));
  });

  it('ships a default call graph that the policy loader accepts, so a fresh install becomes ready', () => {
    const policyServer = values.policyServer as { callgraph: string; existingConfigMap: string };
    const dir = mkdtempSync(join(tmpdir(), 'baton-chart-callgraph-'));
    try {
      writeFileSync(join(dir, 'callgraph.yaml'), policyServer.callgraph);
      const { compiled } = loadPolicyPath(join(dir, 'callgraph.yaml'));
      assert.ok(compiled.hasService('gateway'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(
      policyServer.callgraph,
      readFileSync(new URL('../../deploy/base/callgraph.yaml', import.meta.url), 'utf8'),
      'the same starter as deploy/base',
    );
  });

  it('requires a usable call graph, or the name of a ConfigMap the user owns', () => {
    const policyServer = values.policyServer as Record<string, unknown>;
    const withPolicy = (patch: Record<string, unknown>) => ({ ...values, policyServer: { ...policyServer, ...patch } });
    for (const bad of [
      { callgraph: '' },
      { callgraph: 'apiVersion: baton.dev/v1alpha1\nkind: CallGraph\nspec:\n  services: {}\n' },
      { callgraph: 'hello' },
      { existingConfigMap: 'Not_A_Name' },
    ]) {
      assert.equal(validateValues(withPolicy(bad)), false, JSON.stringify(bad));
    }
    assert.ok(
      validateValues(withPolicy({ callgraph: '', existingConfigMap: 'my-callgraph' })),
      JSON.stringify(validateValues.errors),
    );
    // With existingConfigMap set, the chart renders no ConfigMap of its own, so helm upgrade never overwrites the user's policy.
    const template = read('templates/policy-server.yaml');
    assert.match(
      template,
      /\{\{- if not \.Values\.policyServer\.existingConfigMap \}\}\n---\napiVersion: v1\nkind: ConfigMap\n/,
    );
    assert.match(template, /name: \{\{ \.Values\.policyServer\.existingConfigMap \| default \(printf "%s-callgraph"/);
  });

  it('defines every template it includes', () => {
    const all = templates.map((t) => t.text).join('\n');
    const defined = new Set([...all.matchAll(/\{\{-?\s*define\s+"([^"]+)"/g)].map((m) => m[1]));
    const included = new Set([...all.matchAll(/\b(?:include|template)\s+"([^"]+)"/g)].map((m) => m[1]));
    assert.ok(included.size > 0);
    for (const name of included) assert.ok(defined.has(name), `"${name}" is defined`);
  });

  it('reads only values that values.yaml declares', () => {
    for (const { name, text } of templates) {
      for (const match of text.matchAll(/\$?\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)) {
        let node: unknown = values;
        for (const key of (match[1] as string).slice(1).split('.')) {
          assert.ok(
            typeof node === 'object' && node !== null && key in node,
            `${name}: .Values${match[1]} is declared in values.yaml`,
          );
          node = (node as Record<string, unknown>)[key];
        }
      }
    }
  });

  it('has templates whose YAML is sound once the template actions are stripped', () => {
    for (const { name, text } of manifests) {
      const documents = parseAllDocuments(stripActions(text), { uniqueKeys: true });
      let objects = 0;
      for (const document of documents) {
        assert.equal(document.errors.length, 0, `${name}: ${document.errors.map((e) => e.message).join('; ')}`);
        const object = document.toJS() as Record<string, unknown> | null;
        if (object === null) continue;
        objects += 1;
        for (const field of ['apiVersion', 'kind', 'metadata'])
          assert.ok(field in object, `${name}: a document without ${field}`);
        assert.ok(
          (object.metadata as { labels?: unknown } | null)?.labels !== undefined || object.kind === 'Issuer',
          `${name}: ${String(object.kind)} carries the chart labels`,
        );
      }
      assert.ok(objects > 0, `${name} renders at least one object`);
    }
  });

  it('gives every baton container the restricted securityContext from values', () => {
    for (const { name, text } of manifests.filter((t) => t.text.includes('containers:'))) {
      assert.match(
        text,
        /securityContext:\n\s+\{\{- toYaml \.Values\.containerSecurityContext/,
        `${name} uses containerSecurityContext`,
      );
      assert.match(text, /runAsNonRoot: true|baton\.podSpecCommon/, `${name} runs as non-root`);
    }
  });

  it('runs Redis with an ACL file from a Secret, and mounts each Redis password only into the container that uses it', () => {
    const redis = read('templates/redis.yaml');
    assert.match(redis, /--aclfile, \/etc\/redis\/acl\/users\.acl\]/);
    assert.match(redis, /- \{ name: acl, mountPath: \/etc\/redis\/acl, readOnly: true \}/);
    assert.match(redis, /secretName: \{\{ \.Values\.redis\.aclSecret \}\}/);
    assert.match(redis, /--user baton-admin/, 'the probe authenticates: the default user is off');
    assert.doesNotMatch(redis, /\[redis-cli, ping\]/);
    const sts = read('templates/sts.yaml');
    assert.match(
      sts,
      /redis:\n\s+url: \{\{ \. \}\}\n\s+username: baton-sts\n\s+passwordFile: \/etc\/baton\/redis\/password/,
    );
    assert.match(sts, /- \{ name: redis, mountPath: \/etc\/baton\/redis, readOnly: true \}/);
    assert.match(sts, /secretName: \{\{ \.Values\.redis\.stsSecret \}\}/);
    // The sidecars' secrets: the injector names them and mounts them into the sidecar container (test/e2e/injector-webhook.test.ts).
    assert.match(
      read('templates/injector.yaml'),
      /BATON_SIDECAR__REDIS_SECRET_PREFIX, value: \{\{ \$\.Values\.redis\.sidecarSecretPrefix \| quote \}\}/,
    );
  });

  it('excludes kube-system and the release namespace from injection', () => {
    const webhook = read('templates/webhook.yaml');
    assert.match(webhook, /operator: NotIn\n\s+values:\n\s+- \{\{ \.Release\.Namespace \}\}/);
    assert.ok((values.injector as { excludedNamespaces: string[] }).excludedNamespaces.includes('kube-system'));
    assert.match(webhook, /failurePolicy: \{\{ \.Values\.injector\.failurePolicy \}\}/);
  });

  it('lints and renders with a real helm, for each value set, into objects that validate against the Kubernetes schemas', async () => {
    for (const [name, args] of Object.entries(VALUE_SETS)) {
      const lint = helmLint(CHART, args);
      assert.equal(lint.status, 0, `${name}: ${lint.output}`);
      const objects = helmTemplate(CHART, args);
      assert.ok(objects.length > 10, `${name} renders the control plane`);
      for (const object of objects) await validateKubernetesObject(object);
    }
  });

  it("keeps the STS's policy state on an emptyDir as rendered, so a restarted STS refuses a replayed older policy", () => {
    for (const args of [VALUE_SETS.defaults, VALUE_SETS.plaintext] as const) {
      const objects = helmTemplate(CHART, args);
      const deployment = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'baton-sts') as unknown as {
        spec: {
          template: {
            spec: {
              containers: Array<{ name: string; volumeMounts: Array<{ name: string; mountPath: string }> }>;
              volumes: Array<{ name: string }>;
            };
          };
        };
      };
      const configMap = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'baton-sts') as unknown as {
        data: Record<string, string>;
      };
      const config = parse(configMap.data['sts.config.yaml'] as string) as { policy: { stateFile?: string } };
      assert.ok(config.policy.stateFile, 'policy.stateFile is set');
      const pod = deployment.spec.template.spec;
      assertOnWritableEmptyDir(pod, pod.containers[0] as never, config.policy.stateFile);
    }
  });

  describe('external identity providers, as rendered (one schema for the chart, the injector and the sidecar)', () => {
    it("has the externalIssuers schema scripts/chart-schema.ts generates from the injector's, which is the sidecar's", () => {
      assert.equal(
        read('values.schema.json'),
        chartSchemaText(),
        'helm/baton-mesh/values.schema.json is stale: run node scripts/chart-schema.ts',
      );
      const chartIssuer = (
        JSON.parse(read('values.schema.json')) as {
          properties: { sts: { properties: { externalIssuers: { items: { properties: Record<string, unknown> } } } } };
        }
      ).properties.sts.properties.externalIssuers.items;
      // Every key the sidecar takes, plus the STS's discovery; the secret only by reference.
      for (const key of Object.keys(SidecarExternalIssuerSchema.properties))
        assert.ok(key in chartIssuer.properties, `the chart takes externalIssuers[].${key}`);
      assert.ok('discovery' in chartIssuer.properties);
      const sts = values.sts as Record<string, unknown>;
      const withIssuers = (externalIssuers: unknown[]) => ({ ...values, sts: { ...sts, externalIssuers } });
      assert.ok(
        validateValues(
          withIssuers([
            {
              issuer: 'https://kc.example/realms/shop',
              profile: 'keycloak',
              discovery: true,
              roleScopes: { rule: 'keycloak-realm-roles' },
            },
          ]),
        ),
        JSON.stringify(validateValues.errors),
      );
      for (const bad of [
        { issuer: 'https://kc.example', profile: 'ping' },
        { issuer: 'https://idp.example', introspection: { clientId: 'c', clientSecret: 'in-a-values-file' } },
        { issuer: 'https://idp.example', surprise: 1 },
      ]) {
        assert.equal(validateValues(withIssuers([bad])), false, JSON.stringify(bad));
      }
    });

    it("gives an entrypoint injected by the shipped chart the configuration that accepts each IdP preset's tokens", async () => {
      const idp = await createSigner('idp-1', 'RS256');
      const times = () => ({ iat: nowSec() - 5, exp: nowSec() + 300 });
      // Each IdP's access token as its documentation shows it (test/token/issuer-profile.test.ts has the full shapes and look-alikes).
      const presets = [
        {
          profile: 'keycloak',
          issuer: 'https://keycloak.example.test/realms/shop',
          audience: 'gateway',
          header: { typ: 'JWT' },
          claims: {
            aud: ['gateway', 'account'],
            sub: 'f9c1a3e2-5b1d-4d0e-9a57-1c2b3d4e5f60',
            typ: 'Bearer',
            azp: 'web-shop',
            scope: 'openid orders:read',
          },
          subject: 'f9c1a3e2-5b1d-4d0e-9a57-1c2b3d4e5f60',
          client: 'web-shop',
        },
        {
          profile: 'entra',
          issuer: 'https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0',
          audience: '6e74172b-be56-4843-9ff4-e66a39bb12e3',
          header: { typ: 'JWT' },
          claims: {
            aud: '6e74172b-be56-4843-9ff4-e66a39bb12e3',
            azp: '2b6f5d0e-3a0c-4a1b-9c5e-8f7d6e5c4b3a',
            oid: '690222be-ff1a-4d56-abd1-7e4f7d38e474',
            scp: 'Orders.Read',
            sub: 'HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ',
            tid: '9188040d-6c67-4c5b-b112-36a304b66dad',
            ver: '2.0',
          },
          subject: '690222be-ff1a-4d56-abd1-7e4f7d38e474',
          client: '2b6f5d0e-3a0c-4a1b-9c5e-8f7d6e5c4b3a',
        },
        {
          profile: 'okta',
          issuer: 'https://dev-133337.okta.example/oauth2/default',
          audience: 'api://shop',
          header: { typ: undefined },
          claims: {
            ver: 1,
            aud: 'api://shop',
            cid: '0oa1pcpxzwR9sBk4w4x7',
            uid: '00u1pcla5qYIREDLWCQV',
            scp: ['orders:read'],
            sub: 'alice@example.com',
          },
          subject: 'alice@example.com',
          client: '0oa1pcpxzwR9sBk4w4x7',
        },
        {
          profile: 'auth0',
          issuer: 'https://shop.eu.auth0.example/',
          audience: 'https://api.shop.example',
          header: { typ: 'JWT' },
          claims: {
            aud: ['https://api.shop.example', 'https://shop.eu.auth0.example/userinfo'],
            sub: 'auth0|5f7c8ec7c33c6c004bbafe82',
            azp: 'Xk3nF0pQ8sT2vY7wZ1aB4cD6eG9hJ0kL',
            scope: 'openid orders:read',
          },
          subject: 'auth0|5f7c8ec7c33c6c004bbafe82',
          client: 'Xk3nF0pQ8sT2vY7wZ1aB4cD6eG9hJ0kL',
        },
      ] as const;
      const externalIssuers = presets.map((p) => ({
        issuer: p.issuer,
        profile: p.profile,
        audience: p.audience,
        discovery: true,
      }));
      const objects = helmTemplate(CHART, [
        '--set-json',
        `sts.externalIssuers=${JSON.stringify(externalIssuers)}`,
        '--set',
        'sts.clients[0].id=gateway',
        '--set',
        'sts.clients[0].tlsClientAuth=true',
        '--set',
        'spiffe.namespace=shop',
      ]);

      // The STS loads the configuration the chart rendered for it, issuers and all.
      const stsConfigMap = objects.find(
        (o) => o.kind === 'ConfigMap' && o.metadata.name === 'baton-sts',
      ) as unknown as { data: Record<string, string> };
      const dir = mkdtempSync(join(tmpdir(), 'baton-chart-sts-'));
      try {
        writeFileSync(join(dir, 'sts.yaml'), stsConfigMap.data['sts.config.yaml'] as string);
        const sts = loadStsConfig({ file: join(dir, 'sts.yaml') });
        assert.deepEqual(
          sts.externalIssuers.map((e) => e.profile),
          presets.map((p) => p.profile),
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }

      // The injector, as the chart runs it, injects an entrypoint pod; its sidecar loads what it was given.
      const injectorConfig = renderedInjectorConfig(objects);
      checkInjectorConfig(injectorConfig, 'the chart');
      const object = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { generateName: 'gateway-', annotations: { 'baton.dev/inject': 'true' } },
        spec: {
          serviceAccountName: 'gateway',
          containers: [{ name: 'app', image: 'shop/gateway:1', ports: [{ containerPort: 8080 }] }],
        },
      };
      const { review, pod } = admitPod(object, injectorConfig.sidecar, 'shop');
      assert.equal(review.response.allowed, true, review.response.status?.message);
      const sidecar = pod.spec.initContainers?.find((c) => c.name === 'baton-sidecar');
      const config = loadSidecarConfig({
        env: Object.fromEntries((sidecar?.env ?? []).map((e) => [e.name, e.value ?? 'from-a-secret'])),
      });

      // Verified as the sidecar's wiring verifies (src/sidecar/wiring.ts): each issuer's profile and audience from the config.
      const verifier = createAccessTokenVerifier({
        issuers: config.externalIssuers.map((e) => ({
          issuer: e.issuer,
          keys: createLocalKeySource({ keys: [idp.publicJwk] }),
          kind: 'external' as const,
          audience: e.audience ?? config.service,
          profile: profileOf(e),
        })),
        maxActDepth: config.limits.maxActDepth,
      });
      for (const preset of presets) {
        const token = await idp.sign({ iss: preset.issuer, ...times(), ...preset.claims }, preset.header);
        const verified = await verifier.verify(token, { audience: config.service });
        assert.deepEqual(
          [verified.subject, verified.clientId, verified.subjectIssuer],
          [preset.subject, preset.client, preset.issuer],
          preset.profile,
        );
      }
    });

    it("mounts each introspecting issuer's client secret from its Secret into the STS and the injected sidecar, never into a manifest or an app container", () => {
      const issuers = [
        {
          issuer: 'https://idp.example.com',
          audience: 'gateway',
          discovery: true,
          introspection: {
            clientId: 'baton-gateway',
            tokenPrefix: 'idp_',
            clientSecretFrom: { secretName: 'idp-introspection', key: 'client-secret' },
          },
        },
        {
          issuer: 'https://partners.example.com',
          audience: 'gateway',
          discovery: true,
          introspection: {
            clientId: 'baton-gateway',
            tokenPrefix: 'ptn_',
            clientSecretFrom: { secretName: 'partners-introspection', key: 'client-secret' },
          },
        },
      ];
      type Volume = {
        name: string;
        projected?: { sources: Array<{ secret: { name: string; items: Array<{ key: string; path: string }> } }> };
      };
      /** The Secret and key a file is projected from, through the container's mount of it. */
      const projectedFrom = (
        file: string,
        mounts: ReadonlyArray<{ name: string; mountPath: string }>,
        volumes: readonly Volume[],
      ) => {
        const mount = mounts.find((m) => file.startsWith(`${m.mountPath}/`));
        const sources = volumes.find((v) => v.name === mount?.name)?.projected?.sources ?? [];
        for (const { secret } of sources)
          for (const item of secret.items)
            if (`${mount?.mountPath}/${item.path}` === file) return `${secret.name}/${item.key}`;
        return undefined;
      };
      const objects = helmTemplate(CHART, [
        '--set-json',
        `sts.externalIssuers=${JSON.stringify(issuers)}`,
        '--set',
        'spiffe.namespace=shop',
      ]);
      const stsDeployment = objects.find(
        (o) => o.kind === 'Deployment' && o.metadata.name === 'baton-sts',
      ) as unknown as {
        spec: {
          template: {
            spec: {
              containers: Array<{ volumeMounts: Array<{ name: string; mountPath: string }> }>;
              volumes: Volume[];
            };
          };
        };
      };
      const stsConfigMap = objects.find(
        (o) => o.kind === 'ConfigMap' && o.metadata.name === 'baton-sts',
      ) as unknown as { data: Record<string, string> };
      const sts = parse(stsConfigMap.data['sts.config.yaml'] as string) as {
        externalIssuers: Array<{
          introspection: { clientSecretFile: string; clientSecret?: string; tokenPrefix: string };
        }>;
      };
      const pod = stsDeployment.spec.template.spec;
      const stsFiles = sts.externalIssuers.map((e) =>
        projectedFrom(e.introspection.clientSecretFile, pod.containers[0]?.volumeMounts ?? [], pod.volumes),
      );
      assert.deepEqual(
        stsFiles,
        ['idp-introspection/client-secret', 'partners-introspection/client-secret'],
        'the STS reads each secret from its own Secret',
      );
      assert.deepEqual(
        sts.externalIssuers.map((e) => e.introspection.tokenPrefix),
        ['idp_', 'ptn_'],
      );
      assert.doesNotMatch(JSON.stringify(objects), /"clientSecret"/, 'no client secret in any rendered object');
      const injectorConfig = renderedInjectorConfig(objects);
      const object = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { generateName: 'gateway-', annotations: { 'baton.dev/inject': 'true' } },
        spec: { serviceAccountName: 'gateway', containers: [{ name: 'app', image: 'shop/gateway:1' }] },
      };
      const patched = admitPod(object, injectorConfig.sidecar, 'shop').pod as unknown as {
        spec: {
          initContainers: Array<{
            name: string;
            env: Array<{ name: string; value?: string }>;
            volumeMounts: Array<{ name: string; mountPath: string }>;
          }>;
          containers: Array<{ volumeMounts?: unknown[] }>;
          volumes: Volume[];
        };
      };
      const sidecar = patched.spec.initContainers.find((c) => c.name === 'baton-sidecar');
      const sidecarIssuers = JSON.parse(
        sidecar?.env.find((e) => e.name === 'BATON_EXTERNAL_ISSUERS')?.value ?? '[]',
      ) as Array<{ introspection: { clientSecretFile: string } }>;
      const sidecarFiles = sidecarIssuers.map((e) =>
        projectedFrom(e.introspection.clientSecretFile, sidecar?.volumeMounts ?? [], patched.spec.volumes),
      );
      assert.deepEqual(sidecarFiles, ['idp-introspection/client-secret', 'partners-introspection/client-secret']);
      assert.equal(patched.spec.containers[0]?.volumeMounts, undefined, 'the app container mounts nothing');
    });
  });

  it("meshes pods of several namespaces with the chart's injector and STS: each named service.namespace outside the home, its certificate's ID the one the STS expects", () => {
    const objects = helmTemplate(CHART, [
      '--set',
      'spiffe.namespace=shop',
      '--set-json',
      'sts.clients=[{"id":"gateway.web","tlsClientAuth":true},{"id":"orders","tlsClientAuth":true}]',
    ]);
    const stsConfigMap = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'baton-sts') as unknown as {
      data: Record<string, string>;
    };
    const dir = mkdtempSync(join(tmpdir(), 'baton-chart-namespaces-'));
    let sts: ReturnType<typeof loadStsConfig>;
    try {
      writeFileSync(join(dir, 'sts.yaml'), stsConfigMap.data['sts.config.yaml'] as string);
      sts = loadStsConfig({ file: join(dir, 'sts.yaml') });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const stsMap = createServiceMap(sts.spiffe);
    const injectorConfig = renderedInjectorConfig(objects);
    for (const [account, namespace, name] of [
      ['gateway', 'web', 'gateway.web'],
      ['orders', 'shop', 'orders'],
    ] as const) {
      const object = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { generateName: `${account}-`, annotations: { 'baton.dev/inject': 'true' } },
        spec: { serviceAccountName: account, containers: [{ name: 'app', image: 'shop/app:1' }] },
      };
      const { review, pod } = admitPod(object, injectorConfig.sidecar, namespace);
      assert.equal(review.response.allowed, true, review.response.status?.message);
      const sidecar = pod.spec.initContainers?.find((c) => c.name === 'baton-sidecar');
      const config = loadSidecarConfig({
        env: Object.fromEntries((sidecar?.env ?? []).map((e) => [e.name, e.value ?? 'from-a-secret'])),
      });
      assert.equal(config.service, name);
      const id = createServiceMap(config.spiffe).idOf(config.service);
      assert.equal(
        id,
        `spiffe://cluster.local/ns/${namespace}/sa/${account}`,
        'the ID csi-driver-spiffe issues to the pod',
      );
      assert.ok(
        sts.clients.some((c) => c.id === config.sts.clientId && c.tlsClientAuth === true),
        `the STS knows ${name} by certificate`,
      );
      assert.equal(stsMap.idOf(config.sts.clientId), id, 'the STS expects that very certificate');
      assert.equal(stsMap.serviceOf(id), name);
    }
  });

  describe('scraping, as rendered', () => {
    type Pod = {
      metadata: { labels: Record<string, string> };
      spec: {
        containers: Array<{
          name: string;
          args?: string[];
          env?: Array<{ name: string; value?: string }>;
          ports?: Array<{ name: string; containerPort: number }>;
        }>;
        initContainers?: unknown[];
      };
    };
    const objects = helmTemplate(CHART, VALUE_SETS['monitoring on, meshed namespaces listed'] as readonly string[]);
    const podOf = (name: string) =>
      (
        objects.find((o) => o.kind === 'Deployment' && o.metadata.name === name) as unknown as {
          spec: { template: Pod };
        }
      ).spec.template;
    const scraper = (values.networkPolicy as { scraper: unknown }).scraper;
    const monitors = objects.filter((o) => o.kind === 'PodMonitor') as Array<
      KubernetesObject & {
        spec: {
          selector: Parameters<typeof selects>[0];
          namespaceSelector?: { any?: boolean };
          podMetricsEndpoints: Array<{ port: string; path: string; scheme?: string; tlsConfig?: unknown }>;
        };
      }
    >;

    it('gives the STS and the policy server a plaintext admin port that their configuration opens, a PodMonitor scrapes, and only the scraper may reach', () => {
      const sts = parse(
        (
          objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'baton-sts') as unknown as {
            data: Record<string, string>;
          }
        ).data['sts.config.yaml'] as string,
      ) as Record<string, unknown>;
      const stsAdmin = Value.Default(StsConfigSchema.properties.admin, structuredClone(sts.admin)) as { port?: number };
      const policyEnv = Object.fromEntries(
        (podOf('baton-policy-server').spec.containers[0]?.env ?? []).map((e) => [e.name, e.value ?? '']),
      );
      const policyAdmin = loadConfig(PolicyServerConfigSchema, {
        env: policyEnv,
        overrides: { policy: 'p', signingKey: 'k' },
      }).admin;
      for (const [name, configured] of [
        ['baton-sts', stsAdmin.port],
        ['baton-policy-server', policyAdmin.port],
      ] as const) {
        const pod = podOf(name);
        const port = pod.spec.containers[0]?.ports?.find((p) => p.name === 'admin');
        assert.ok(
          port !== undefined && port.containerPort === configured,
          `${name}: container port admin (${port?.containerPort}) is the configured admin.port (${configured})`,
        );
        const monitor = monitors.find((m) => selects(m.spec.selector, pod.metadata.labels));
        assert.ok(monitor, `a PodMonitor selects ${name}`);
        assert.deepEqual(
          monitor.spec.podMetricsEndpoints.map((e) => [e.port, e.path, e.scheme ?? 'http', e.tlsConfig]),
          [['admin', '/metrics', 'http', undefined]],
          'plain http, no TLS settings to skip',
        );
        assert.deepEqual(
          admittedTo(objects, { namespace: 'baton-system', labels: pod.metadata.labels }, 'admin'),
          [scraper],
          `${name}: only the scraper reaches the admin port`,
        );
      }
    });

    it("lets only the scraper reach the sidecars' admin ports in every listed meshed namespace, and a PodMonitor scrape them there", () => {
      const injected = { 'baton.dev/service': 'orders', app: 'orders' };
      for (const namespace of ['shop', 'web']) {
        assert.deepEqual(
          admittedTo(objects, { namespace, labels: injected }, 'baton-admin'),
          [scraper],
          `${namespace}: the admin port`,
        );
        assert.deepEqual(
          admittedTo(objects, { namespace, labels: injected }, 'baton-inbound'),
          ['everyone'],
          `${namespace}: the inbound port`,
        );
        assert.deepEqual(
          admittedTo(objects, { namespace, labels: injected }, 'http'),
          [],
          `${namespace}: the app's own port`,
        );
      }
      const sidecars = monitors.find((m) => selects(m.spec.selector, injected));
      assert.equal(sidecars?.spec.namespaceSelector?.any, true);
      assert.deepEqual(
        sidecars?.spec.podMetricsEndpoints.map((e) => e.port),
        ['baton-admin'],
      );
    });
  });

  describe('workload identity', () => {
    const withValues = (patch: Record<string, unknown>) => ({ ...values, ...patch });
    const sts = values.sts as Record<string, unknown>;

    it("defaults to mtls with csi-driver-spiffe, and names the control plane's ServiceAccounts baton-sts and baton-policy-server", () => {
      assert.deepEqual(values.transport, { mode: 'mtls' });
      assert.equal((values.identity as { source: string; csiDriver: string }).source, 'csi-driver-spiffe');
      assert.equal((values.identity as { csiDriver: string }).csiDriver, 'spiffe.csi.cert-manager.io');
      assert.equal(sts.serviceAccountName, 'baton-sts');
      assert.equal((values.policyServer as Record<string, unknown>).serviceAccountName, 'baton-policy-server');
      for (const [file, key] of [
        ['templates/sts.yaml', 'sts'],
        ['templates/policy-server.yaml', 'policyServer'],
      ] as const) {
        const text = read(file);
        // The ServiceAccount object and the pod's serviceAccountName both come from the value.
        assert.match(
          text,
          new RegExp(
            `kind: ServiceAccount\\nmetadata:\\n(?:  #.*\\n)?  name: \\{\\{ \\.Values\\.${key}\\.serviceAccountName \\}\\}`,
          ),
          `${file} names its ServiceAccount from ${key}.serviceAccountName`,
        );
        assert.match(text, new RegExp(`serviceAccountName: \\{\\{ \\.Values\\.${key}\\.serviceAccountName \\}\\}`));
        assert.match(text, /include "baton\.identityVolumes"/, `${file} mounts the identity volume`);
        assert.match(text, /include "baton\.identityMount"/);
        assert.match(
          text,
          /scheme: \{\{ include "baton\.scheme" \. \| upper \}\}/,
          `${file} probes over TLS in mtls mode`,
        );
      }
      const helpers = read('templates/_helpers.tpl');
      assert.match(
        helpers,
        /driver: \{\{ \.Values\.identity\.csiDriver \}\}\n\s+readOnly: true\n\s+volumeAttributes:\n(?:\s+#.*\n)?\s+spiffe\.csi\.cert-manager\.io\/fs-group: \{\{ \.Values\.podSecurityContext\.runAsGroup \| quote \}\}/,
      );
      assert.match(helpers, /mountPath: \/var\/run\/secrets\/spiffe\.io, readOnly: true/);
    });

    it('accepts certificate clients and refuses a client secret in values, and plaintext without a clients Secret', () => {
      assert.ok(
        validateValues(
          withValues({
            sts: {
              ...sts,
              clients: [
                { id: 'orders', tlsClientAuth: true },
                { id: 'legacy', tlsClientAuthSanUri: 'spiffe://cluster.local/legacy/billing' },
              ],
            },
          }),
        ),
        JSON.stringify(validateValues.errors),
      );
      for (const client of [
        { id: 'orders', secret: 'dev-only-orders-secret-00001' },
        { id: 'orders' },
        { id: 'orders', tlsClientAuth: false },
        { id: 'Orders', tlsClientAuth: true },
      ]) {
        assert.equal(validateValues(withValues({ sts: { ...sts, clients: [client] } })), false, JSON.stringify(client));
      }
      assert.equal(
        validateValues(withValues({ transport: { mode: 'plaintext' } })),
        false,
        'plaintext needs sts.clientsSecret',
      );
      assert.ok(
        validateValues(
          withValues({ transport: { mode: 'plaintext' }, sts: { ...sts, clientsSecret: 'baton-sts-clients' } }),
        ),
        JSON.stringify(validateValues.errors),
      );
      assert.equal(validateValues(withValues({ transport: { mode: 'tls' } })), false);
      assert.equal(
        validateValues(withValues({ identity: { ...(values.identity as object), source: 'vault' } })),
        false,
      );
      assert.equal(
        validateValues(withValues({ spiffe: { trustDomain: 'Cluster.Local', namespace: 'default' } })),
        false,
      );
    });

    it('sets only injector, policy-server and STS keys that baton reads', () => {
      const injector = envNames(InjectorConfigSchema);
      for (const name of envNamesIn(read('templates/injector.yaml')))
        assert.ok(injector.has(name), `the injector reads ${name}`);
      const policyServer = envNames(withContract(PolicyServerConfigSchema, 'policy-server'));
      for (const name of envNamesIn(read('templates/policy-server.yaml')))
        assert.ok(policyServer.has(name), `the policy server reads ${name}`);
      const stsKeys = Object.keys(withContract(StsConfigSchema, 'sts').properties);
      const configFile = /sts\.config\.yaml: \|\n([\s\S]*?)\n---/.exec(read('templates/sts.yaml'))?.[1] ?? '';
      const topLevel = [...configFile.matchAll(/^ {4}([a-zA-Z]+):/gm)].map((m) => m[1] as string);
      assert.ok(
        topLevel.includes('transport') &&
          topLevel.includes('identity') &&
          topLevel.includes('spiffe') &&
          topLevel.includes('clients'),
      );
      for (const key of topLevel) assert.ok(stsKeys.includes(key), `the STS reads ${key}`);
    });

    it('gives spiffe-helper the SPIRE file names baton reads in the SPIRE layouts', () => {
      const helperConfig = read('templates/identity.yaml');
      const helpers = read('templates/_helpers.tpl');
      for (const [key, file] of [
        ['svid_file_name', 'svid.pem'],
        ['svid_key_file_name', 'svid_key.pem'],
        ['svid_bundle_file_name', 'svid_bundle.pem'],
      ] as const) {
        assert.match(helperConfig, new RegExp(`${key} = "${file.replace('.', '\\.')}"`));
        assert.match(helpers, new RegExp(`/var/run/secrets/spiffe\\.io/${file.replace('.', '\\.')}`));
      }
      assert.match(helperConfig, /cert_dir = "\/var\/run\/secrets\/spiffe\.io"/);
      assert.match(helpers, /restartPolicy: Always\n\s+args: \[-config, \/etc\/spiffe-helper\/helper\.conf\]/);
      assert.match(helpers, /csi: \{ driver: \{\{ \.Values\.identity\.spire\.csiDriver \}\}, readOnly: true \}/);
    });
  });
});
