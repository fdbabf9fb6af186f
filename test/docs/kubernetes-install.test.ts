/**
 * docs/kubernetes.md's install steps work as written (#24): no step creates
 * what another step (or the overlay it applies) already created, every
 * meshed namespace has its baton-mesh ConfigMap before anything runs in it,
 * the policy server's port is one number everywhere, and no policy URL in
 * the docs is http:// where the default mtls mode refuses it.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { InjectorConfigSchema } from '../../src/injector/config.ts';
import { PolicyServerConfigSchema } from '../../src/policy/distribution/config.ts';
import { kustomize } from '../helpers/kubernetes-schema.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const doc = readFileSync(join(ROOT, 'docs/kubernetes.md'), 'utf8');
const install = doc.slice(doc.indexOf('## Install'), doc.indexOf('### Every key and its default'));
/** The install section's shell commands, in order, continuations joined. */
const commands = [...install.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) =>
  (m[1] as string)
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter((l) => l !== '' && !l.startsWith('#')),
);

describe('docs/kubernetes.md, installing as written', () => {
  it('never kubectl-creates what an earlier step created or applied (create refuses an existing object; apply does not)', () => {
    const existing = new Map<string, string>();
    const create = (key: string, by: string) => {
      assert.ok(!existing.has(key), `"${by}" fails: ${key} already exists, from "${existing.get(key)}"`);
      existing.set(key, by);
    };
    for (const command of commands) {
      const namespaced = /^kubectl -n (\S+) create (role|rolebinding|configmap|secret generic) (\S+)/.exec(command);
      const namespace = /^kubectl create namespace (\S+)/.exec(command);
      if (namespaced !== null)
        create(`${namespaced[2]?.replace('secret generic', 'secret')} ${namespaced[1]}/${namespaced[3]}`, command);
      if (namespace !== null) create(`namespace ${namespace[1]}`, command);
      if (command.startsWith('kubectl apply -k ')) {
        for (const object of kustomize(join(ROOT, command.split(' ')[3] as string))) {
          const kind = object.kind.toLowerCase();
          existing.set(
            kind === 'namespace'
              ? `namespace ${object.metadata.name}`
              : `${kind} ${object.metadata.namespace}/${object.metadata.name}`,
            command,
          );
        }
      }
    }
  });

  it('gives every namespace the baton-mesh ConfigMap before a meshed pod is applied there', () => {
    const applyAt = commands.findIndex((c) => c === 'kubectl apply -k deploy/overlays/example');
    assert.ok(applyAt > 0);
    const meshed = new Set(
      kustomize(join(ROOT, 'deploy/overlays/example'))
        .filter(
          (o) =>
            o.kind === 'Deployment' &&
            (o as unknown as { spec: { template: { metadata: { annotations?: Record<string, string> } } } }).spec
              .template.metadata.annotations?.['baton.dev/inject'] === 'true',
        )
        .map((o) => o.metadata.namespace),
    );
    assert.ok(meshed.size > 0);
    for (const namespace of meshed) {
      const at = commands.findIndex((c) => c.startsWith(`kubectl -n ${namespace} create configmap baton-mesh `));
      assert.ok(
        at !== -1 && at < applyAt,
        `${namespace}'s baton-mesh ConfigMap is created before the overlay runs pods there`,
      );
    }
  });

  it("runs the policy server on one port: its default, the injector's, compose's, deploy/ and the chart", () => {
    const port = PolicyServerConfigSchema.properties.port.default as number;
    assert.equal(
      new URL(InjectorConfigSchema.properties.sidecar.properties.policyUrl.default as string).port,
      String(port),
    );
    assert.equal(
      (parse(readFileSync(join(ROOT, 'examples/compose/policy-server.yaml'), 'utf8')) as { port: number }).port,
      port,
    );
    assert.equal(
      (parse(readFileSync(join(ROOT, 'helm/baton-mesh/values.yaml'), 'utf8')) as { policyServer: { port: number } })
        .policyServer.port,
      port,
    );
    assert.match(readFileSync(join(ROOT, 'deploy/base/policy-server.yaml'), 'utf8'), new RegExp(`--port, "${port}"`));
    for (const page of readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md'))) {
      for (const m of readFileSync(join(ROOT, 'docs', page), 'utf8').matchAll(/policy[-_a-z]*:(\d{4})\b/gi))
        assert.equal(Number(m[1]), port, `docs/${page}: ${m[0]}`);
    }
  });

  it('gives no http:// policy or STS URL in the docs except where plaintext mode is said', () => {
    for (const page of readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md'))) {
      for (const line of readFileSync(join(ROOT, 'docs', page), 'utf8').split('\n')) {
        if (!/(url|issuer): http:\/\/(baton-)?(policy|sts)/i.test(line)) continue;
        assert.match(line, /plaintext/i, `docs/${page}: ${line.trim()}`);
      }
    }
  });
});
