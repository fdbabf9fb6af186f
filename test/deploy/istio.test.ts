/**
 * deploy/istio/, the Istio objects of baton's authz data plane
 * (docs/istio.md), validated as deploy/ is: rendered by `kubectl
 * kustomize`, each Istio object against its CustomResourceDefinition's
 * OpenAPI schema (vendored from istio/api, vendor/istio-api/), istiod's
 * extension providers against Istio's MeshConfig proto, the EnvoyFilter's
 * filter against Envoy's ext_authz proto (both vendored), and all of them
 * against each other and against what the injector and baton authz do.
 * No Istio control plane runs here; CEL validation rules
 * (x-kubernetes-validations) are not evaluated.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Value } from '@sinclair/typebox/value';
import { Ajv } from 'ajv';
import { parse, parseAllDocuments } from 'yaml';
import { AuthzConfigSchema } from '../../src/authz/config.ts';
import { DIRECTION_METADATA } from '../../src/authz/grpc.ts';
import { DATA_PLANE_LABEL } from '../../src/injector/authz-container.ts';
import { InjectorConfigSchema } from '../../src/injector/config.ts';
import { IdentityHeader } from '../../src/sidecar/headers.ts';
import { type KubernetesObject, kustomize } from '../helpers/kubernetes-schema.ts';
import { loadProtos, protoJsonProblems } from './proto-json.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ISTIO_API = join(ROOT, 'vendor/istio-api');
const ENVOY_API = join(ROOT, 'vendor/envoy-ext-authz');
const objects = kustomize(join(ROOT, 'deploy/istio'));
const istiod = parse(readFileSync(join(ROOT, 'deploy/istio/istiod-values.yaml'), 'utf8')) as {
  meshConfig: { extensionProviders: Array<Record<string, Record<string, unknown> | string>> };
};
const injector = Value.Default(InjectorConfigSchema.properties.sidecar, {}) as {
  authzGrpcPort: number;
  authzHttpPort: number;
};
const authz = Value.Default(AuthzConfigSchema.properties.http, {}) as { pathPrefix: string; port: number };

interface Crd {
  spec: {
    group: string;
    names: { kind: string };
    versions: Array<{ name: string; served: boolean; schema: { openAPIV3Schema: Record<string, unknown> } }>;
  };
}
const CRDS = parseAllDocuments(readFileSync(join(ISTIO_API, 'crds/istio-crds.yaml'), 'utf8'))
  .map((d) => d.toJS() as Crd)
  .filter((d) => d !== null);

function find(kind: string): KubernetesObject & { spec: Record<string, unknown> } {
  const found = objects.find((o) => o.kind === kind);
  assert.ok(found, `deploy/istio renders a ${kind}`);
  return found as KubernetesObject & { spec: Record<string, unknown> };
}

function provider(name: string): Record<string, unknown> {
  const entry = istiod.meshConfig.extensionProviders.find((p) => p.name === name);
  assert.ok(entry, `istiod-values.yaml has the extension provider ${name}`);
  return entry as Record<string, unknown>;
}

/**
 * The schema as `kubectl apply --validate=strict` reads it: a field the
 * schema does not name is an error (the API server would prune it
 * silently), except where the schema keeps unknown fields on purpose.
 */
function strict(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(strict);
  if (typeof schema !== 'object' || schema === null) return schema;
  const node = Object.fromEntries(
    Object.entries(schema).map(([k, v]) => [
      k,
      k === 'properties' ? Object.fromEntries(Object.entries(v as object).map(([p, s]) => [p, strict(s)])) : strict(v),
    ]),
  );
  if (
    node.properties !== undefined &&
    node.additionalProperties === undefined &&
    node['x-kubernetes-preserve-unknown-fields'] !== true
  )
    node.additionalProperties = false;
  return node;
}

describe('deploy/istio (Istio objects for the authz data plane)', () => {
  it('renders Istio objects that validate against the CRD schemas of istio/api', () => {
    const ajv = new Ajv({ strict: false, allErrors: true });
    assert.deepEqual(objects.map((o) => o.kind).sort(), [
      'AuthorizationPolicy',
      'EnvoyFilter',
      'PeerAuthentication',
      'ServiceEntry',
    ]);
    for (const object of objects) {
      const [group, version] = object.apiVersion.split('/');
      const crd = CRDS.find((c) => c.spec.group === group && c.spec.names.kind === object.kind);
      assert.ok(crd, `a vendored CRD for ${object.apiVersion} ${object.kind}`);
      const served = crd.spec.versions.find((v) => v.name === version && v.served);
      assert.ok(served, `${object.kind} ${version} is a served version`);
      const validate = ajv.compile(strict(served.schema.openAPIV3Schema) as Record<string, unknown>);
      const { apiVersion: _a, kind: _k, metadata: _m, ...body } = object;
      assert.ok(validate(body), `${object.kind} ${object.metadata.name}: ${ajv.errorsText(validate.errors)}`);
      assert.equal(
        validate({ ...body, spec: { ...(body.spec as object), notAField: true } }),
        false,
        `${object.kind}: a misspelt field is refused`,
      );
    }
  });

  it('has istiod extension providers that are Istio MeshConfig, field by field (mesh/v1alpha1/config.proto)', () => {
    const root = loadProtos(ISTIO_API, ['mesh/v1alpha1/config.proto']);
    assert.deepEqual(protoJsonProblems(root, 'istio.mesh.v1alpha1.MeshConfig', istiod.meshConfig), []);
    // The checker refuses what istiod would.
    assert.notDeepEqual(
      protoJsonProblems(root, 'istio.mesh.v1alpha1.MeshConfig', {
        extensionProviders: [
          { name: 'x', envoyExtAuthzGrpc: { service: 'a', port: 1, failOpen: false, includePeerCertificate: true } },
        ],
      }),
      [],
    );
  });

  it("has an outbound EnvoyFilter whose filter is Envoy's ext_authz, field by field (envoy.extensions.filters.http.ext_authz.v3.ExtAuthz)", () => {
    const filter = find('EnvoyFilter');
    const [patch] = filter.spec.configPatches as Array<{
      applyTo: string;
      match: { context: string };
      patch: { operation: string; value: { name: string; typed_config: Record<string, unknown> } };
    }>;
    assert.ok(patch);
    assert.equal(patch.applyTo, 'HTTP_FILTER');
    assert.equal(patch.match.context, 'SIDECAR_OUTBOUND');
    assert.equal(patch.patch.operation, 'INSERT_BEFORE');
    assert.deepEqual(Object.keys(patch.patch.value).sort(), ['name', 'typed_config']);
    assert.equal(patch.patch.value.name, 'envoy.filters.http.ext_authz');
    const root = loadProtos(ENVOY_API, ['envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto']);
    const typed = patch.patch.value.typed_config;
    assert.deepEqual(protoJsonProblems(root, 'google.protobuf.Any', typed), []);
    assert.notDeepEqual(
      protoJsonProblems(root, 'google.protobuf.Any', { ...typed, failure_mode_alow: false }),
      [],
      'a misspelt field is refused',
    );
    // Fail closed, and the direction set by the filter, never by a request.
    assert.equal(typed.failure_mode_allow, false);
    const grpc = typed.grpc_service as {
      envoy_grpc: { cluster_name: string };
      initial_metadata: Array<{ key: string; value: string }>;
    };
    assert.deepEqual(grpc.initial_metadata, [{ key: DIRECTION_METADATA, value: 'outbound' }]);
    const entry = find('ServiceEntry');
    assert.equal(
      grpc.envoy_grpc.cluster_name,
      `outbound|${injector.authzGrpcPort}||${(entry.spec.hosts as string[])[0]}`,
      "Istio's cluster name for the ServiceEntry's gRPC port",
    );
  });

  it("points every provider at baton authz on the pod's loopback, on the ports the injector gives it, failing closed", () => {
    const entry = find('ServiceEntry');
    assert.deepEqual(entry.spec.endpoints, [{ address: '127.0.0.1' }]);
    const ports = entry.spec.ports as Array<{ number: number; protocol: string }>;
    assert.deepEqual(
      ports.map((p) => [p.number, p.protocol]),
      [
        [injector.authzGrpcPort, 'GRPC'],
        [injector.authzHttpPort, 'HTTP'],
      ],
    );
    const host = (entry.spec.hosts as string[])[0];
    const grpc = provider('baton-authz-grpc').envoyExtAuthzGrpc as Record<string, unknown>;
    assert.deepEqual([grpc.service, grpc.port, grpc.failOpen], [host, injector.authzGrpcPort, false]);
    const http = provider('baton-authz-http').envoyExtAuthzHttp as Record<string, unknown>;
    assert.deepEqual([http.service, http.port, http.failOpen], [host, injector.authzHttpPort, false]);
    assert.equal(http.pathPrefix, `${authz.pathPrefix}/inbound`, "the HTTP check's inbound prefix");
    // What baton answers with reaches the app; what it reads reaches baton.
    assert.deepEqual(
      new Set(http.headersToUpstreamOnAllow as string[]),
      new Set([...Object.values(IdentityHeader), 'traceparent']),
    );
    for (const name of ['authorization', 'x-forwarded-client-cert', 'baton*'])
      assert.ok((http.includeRequestHeadersInCheck as string[]).includes(name), name);
  });

  it('selects the pods the injector labels, inbound (CUSTOM) and outbound, with mutual TLS required in front of them', () => {
    const policy = find('AuthorizationPolicy');
    assert.equal(policy.spec.action, 'CUSTOM');
    assert.equal((policy.spec.provider as { name: string }).name, 'baton-authz-grpc');
    assert.deepEqual(policy.spec.rules, [{}], 'every request');
    for (const kind of ['AuthorizationPolicy', 'PeerAuthentication'])
      assert.deepEqual(
        (find(kind).spec.selector as { matchLabels: unknown }).matchLabels,
        { [DATA_PLANE_LABEL]: 'authz' },
        kind,
      );
    assert.deepEqual((find('EnvoyFilter').spec.workloadSelector as { labels: unknown }).labels, {
      [DATA_PLANE_LABEL]: 'authz',
    });
    // Mesh-wide from the root namespace; Istio ignores a PeerAuthentication selector there, so that one lives with the pods.
    for (const kind of ['AuthorizationPolicy', 'EnvoyFilter', 'ServiceEntry'])
      assert.equal(find(kind).metadata.namespace, 'istio-system', kind);
    const peer = find('PeerAuthentication');
    assert.notEqual(peer.metadata.namespace, 'istio-system');
    assert.equal((peer.spec.mtls as { mode: string }).mode, 'STRICT');
  });
});
