/**
 * Every fenced shell command in README.md and docs/*.md, exercised. The
 * commands are extracted from the Markdown (```sh / ```bash / ```shell
 * blocks, backslash continuations joined, comments dropped) and each must be
 * listed in COMMANDS below, with how it is covered:
 *
 * - `run`: run here, as written, by `sh`, against the demo mesh (the same
 *   shop policy as compose), with only the substitutions in `substitute()`:
 *   the demo's loopback ports for compose's published ones, a scratch folder
 *   for absolute paths, `baton` for `npx baton` (the installed bin, which
 *   test/package/pack.test.ts runs from a packed tarball);
 * - `kubectl-dry-run`: run with `--dry-run=client -o yaml`, which checks the
 *   command and the files it reads without a cluster;
 * - `elsewhere`: run by another test, named;
 * - `not-here`: needs Docker, a Kubernetes cluster, or minutes of benchmark;
 *   the reason is printed loudly on every run.
 *
 * A command in the docs that is not listed fails the test, naming the file and
 * the command: add it to COMMANDS with how it is covered.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Mesh, startMesh } from '../../src/demo/mesh.ts';
import { freePort, waitFor } from '../helpers/net.ts';
import { kubeTool } from '../../scripts/kube-tools.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

type Coverage =
  | { readonly how: 'run'; readonly expect?: RegExp; readonly status?: number; readonly background?: true }
  | { readonly how: 'kubectl-dry-run' }
  | { readonly how: 'elsewhere'; readonly test: string }
  | {
      readonly how: 'not-here';
      readonly needs:
        | 'Docker'
        | 'a Kubernetes cluster'
        | 'a quiet machine for minutes (the benchmark)'
        | 'the npm registry with the package published'
        | 'the identity provider itself (a tenant, an account, the network)';
      readonly instead?: string;
    };

/** docs/kubernetes.md's trust-domain issuers, applied from a here-document. */
const CERT_MANAGER_ISSUERS = `kubectl apply -f - <<'YAML'
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: { name: selfsigned }
spec: { selfSigned: {} }
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: { name: baton-trust-domain-ca, namespace: cert-manager }
spec:
  isCA: true
  commonName: baton trust domain CA
  secretName: baton-trust-domain-ca
  privateKey: { algorithm: ECDSA, size: 256 }
  issuerRef: { name: selfsigned, kind: ClusterIssuer, group: cert-manager.io }
---
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: { name: baton-trust-domain }
spec: { ca: { secretName: baton-trust-domain-ca } }
YAML`;

const DOCKER = {
  how: 'not-here',
  needs: 'Docker',
  instead:
    'test/deploy/dockerfile.test.ts runs the Dockerfile stages by hand; test/deploy/compose.test.ts checks the compose file; test/deploy/compose-health.test.ts brings it up without Docker and runs every healthcheck',
} as const;
const CLUSTER = {
  how: 'not-here',
  needs: 'a Kubernetes cluster',
  instead: 'test/deploy/kustomize.test.ts and helm.test.ts render and validate the manifests',
} as const;
const BENCH = {
  how: 'not-here',
  needs: 'a quiet machine for minutes (the benchmark)',
  instead: 'test/bench/smoke.test.ts',
} as const;
const IDP = {
  how: 'not-here',
  needs: 'the identity provider itself (a tenant, an account, the network)',
  instead:
    'test/e2e/identity-providers.test.ts sends tokens shaped as each IdP documents them through real processes; test/cli/token-check.test.ts runs baton token check',
} as const;
const ISTIO = {
  ...CLUSTER,
  instead:
    "test/deploy/istio.test.ts renders deploy/istio and validates it against the vendored Istio CRD schemas, MeshConfig and Envoy's ext_authz protos",
} as const;
const NGINX_DOC = {
  how: 'elsewhere',
  test: 'test/e2e/authz-nginx-templates.test.ts (runs these lines into a scratch folder and has nginx check the result; test/e2e/authz-nginx.test.ts runs the same files through the three-hop chain)',
} as const;
const NEWCOMER = {
  how: 'elsewhere',
  test: 'test/e2e/demo-newcomer.test.ts (runs the demo with --logs and the audit, observed and suggest commands it prints)',
} as const;

/** File → command (as extracted) → coverage. */
const COMMANDS: Readonly<Record<string, Readonly<Record<string, Coverage>>>> = {
  'README.md': {
    'npm install && npm start': { how: 'elsewhere', test: 'test/e2e/demo.test.ts (npm start runs baton demo)' },
    'npm test': { how: 'elsewhere', test: 'this run: npm test is what runs this file' },
    'npm ci && npm pack': {
      how: 'elsewhere',
      test: 'test/package/pack.test.ts (npm pack in the checkout, which npm ci set up)',
    },
    'npm install /path/to/baton-mesh/baton-mesh-0.1.0.tgz': {
      how: 'elsewhere',
      test: 'test/package/pack.test.ts (installs the packed tarball into an empty project); test/docs/readme-install.test.ts checks the file name is what npm pack writes',
    },
    'npx baton --help': { how: 'run', expect: /Usage: baton <command>/ },
    'npx baton policy check callgraph.yaml': { how: 'run', expect: /callgraph\.yaml: ok/ },
    'docker build -t baton-mesh:dev .': DOCKER,
    'docker run --rm baton-mesh:dev --help': DOCKER,
    'docker tag baton-mesh:dev ghcr.io/baton-dev/baton-mesh:0.1.0': {
      ...DOCKER,
      instead:
        'test/docs/readme-install.test.ts checks the name and tag are the ones deploy/, the chart and the injector use',
    },
    'docker compose up --build': DOCKER,
    'npm start -- --logs ./demo-logs': NEWCOMER,
    [`REQUEST=$(grep -ho '"request":"[A-Za-z0-9_-]*"' ./demo-logs/gateway-sidecar.log | head -1 | cut -d'"' -f4)`]:
      NEWCOMER,
    'npm run -s baton -- audit --request "$REQUEST" ./demo-logs': NEWCOMER,
    'npm run -s baton -- policy observed --policy examples/shop.callgraph.yaml --logs ./demo-logs': NEWCOMER,
    'npm run -s baton -- policy suggest --logs ./demo-logs': NEWCOMER,
  },
  'docs/docker-compose.md': {
    'docker compose up --build': DOCKER,
    [`TOKEN=$(curl -s -d sub=alice -d 'scope=shop orders:write payments:charge otp' -d acr=urn:baton:acr:mfa http://localhost:9000/dev/token | sed 's/.*"access_token":"\\([^"]*\\)".*/\\1/')`]:
      { how: 'run' },
    'curl -s -X POST -H "Authorization: Bearer $TOKEN" http://localhost:7080/checkout': {
      how: 'run',
      expect: /"chain":\s*"gateway,orders"/,
    },
    'curl -s -X POST -H "Authorization: Bearer $TOKEN" http://localhost:7080/direct-charge': {
      how: 'run',
      expect: /"status":\s*403[\s\S]*payments\.accepts|payments\.accepts[\s\S]*"status":\s*403/,
    },
    'baton certs --out /var/lib/baton/identities --trust-domain compose.local --namespace baton gateway orders payments baton-sts baton-policy-server':
      { how: 'run', expect: /DEVELOPMENT[\s\S]*baton-policy-server/ },
    [`docker compose exec redis sh -c 'redis-cli --user baton-admin --pass "$(cat /etc/redis/admin/password)" --no-auth-warning --scan'`]:
      DOCKER,
  },
  'docs/identity-providers.md': {
    'curl -s -d grant_type=password -d client_id=web -d username=alice -d password=… https://keycloak.example.com/realms/shop/protocol/openid-connect/token | jq -r .access_token | baton token check --config gateway.sidecar.yaml':
      IDP,
    'az account get-access-token --resource api://shop-gateway --query accessToken -o tsv | baton token check --config gateway.sidecar.yaml':
      IDP,
    'curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials -d scope=orders:read https://shop.okta.com/oauth2/default/v1/token | jq -r .access_token | baton token check --config gateway.sidecar.yaml':
      IDP,
    [`curl -s -H 'content-type: application/json' -d '{"client_id":"…","client_secret":"…","audience":"https://api.shop.example","grant_type":"client_credentials"}' https://shop.eu.auth0.com/oauth/token | jq -r .access_token | baton token check --config gateway.sidecar.yaml`]:
      IDP,
    '… | baton token check --config gateway.sidecar.yaml': IDP,
    "cat > issuers.yaml <<'YAML'\n- { issuer: https://keycloak.example.com/realms/shop, profile: keycloak }\nYAML": {
      how: 'elsewhere',
      test: 'test/e2e/demo-idp.test.ts (writes an issuers file of this shape and passes it with --issuers)',
    },
    'npx baton demo --keep --issuers issuers.yaml --policy open.callgraph.yaml': {
      how: 'elsewhere',
      test: 'test/e2e/demo-idp.test.ts (the demo with --issuers and --policy, your user and IdP at the last hop)',
    },
    'curl -s -X POST -H "Authorization: Bearer $TOKEN" http://127.0.0.1:<gateway port>/checkout': {
      how: 'elsewhere',
      test: 'test/e2e/demo-idp.test.ts',
    },
  },
  'docs/identity.md': {
    'npm run -s baton -- certs --out /tmp/baton-certs --trust-domain cluster.local gateway orders payments': {
      how: 'elsewhere',
      test: 'test/identity/certs-cli.test.ts (baton certs: the layout, the IDs, reuse of fresh certificates)',
    },
  },
  'docs/istio.md': {
    'helm upgrade istiod istio/istiod -n istio-system --reuse-values -f deploy/istio/istiod-values.yaml': ISTIO,
    'kubectl apply -k deploy/istio': ISTIO,
  },
  'docs/kubernetes.md': {
    'kubectl create namespace baton-system': { how: 'kubectl-dry-run' },
    'openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out policy-signing.key.pem': { how: 'run' },
    'openssl pkey -in policy-signing.key.pem -pubout -out policy-signing.pub.pem': { how: 'run' },
    'kubectl -n baton-system create secret generic baton-policy-signing-key --from-file=policy-signing.key.pem': {
      how: 'kubectl-dry-run',
    },
    'kubectl -n baton-system create configmap baton-mesh --from-file=policy-signing.pub.pem': {
      how: 'kubectl-dry-run',
    },
    'openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out sts-1.pem': { how: 'run' },
    'kubectl -n baton-system create secret generic baton-sts-keys --from-file=sts-1.pem': { how: 'kubectl-dry-run' },
    'npx baton redis-acl --services gateway,orders,payments --dir ./baton-redis': { how: 'run' },
    'kubectl -n baton-system create secret generic baton-redis-acl --from-file=users.acl=baton-redis/users.acl --from-file=admin-password=baton-redis/baton-admin/password':
      { how: 'kubectl-dry-run' },
    'kubectl -n baton-system create secret generic baton-redis-sts --from-file=password=baton-redis/baton-sts/password':
      { how: 'kubectl-dry-run' },
    'helm repo add jetstack https://charts.jetstack.io --force-update': CLUSTER,
    [`helm upgrade -i -n cert-manager cert-manager jetstack/cert-manager --create-namespace --set crds.enabled=true --set 'approveSignerNames={issuers.cert-manager.io/*,clusterissuers.cert-manager.io/selfsigned}'`]:
      CLUSTER,
    [CERT_MANAGER_ISSUERS]: CLUSTER,
    'kubectl -n cert-manager wait --for=condition=Ready certificate/baton-trust-domain-ca': CLUSTER,
    [`helm upgrade -i -n cert-manager cert-manager-csi-driver-spiffe jetstack/cert-manager-csi-driver-spiffe --wait --set app.trustDomain=cluster.local --set app.approver.signerName=clusterissuers.cert-manager.io/baton-trust-domain --set app.issuer.name=baton-trust-domain --set app.issuer.kind=ClusterIssuer --set app.issuer.group=cert-manager.io --set 'app.driver.volumes[0].name=root-cas' --set 'app.driver.volumes[0].secret.secretName=baton-trust-domain-ca' --set 'app.driver.volumeMounts[0].name=root-cas' --set 'app.driver.volumeMounts[0].mountPath=/var/run/secrets/cert-manager-csi-driver-spiffe' --set app.driver.sourceCABundle=/var/run/secrets/cert-manager-csi-driver-spiffe/ca.crt`]:
      CLUSTER,
    'kubectl apply -k deploy/overlays/example': CLUSTER,
    [`helm install baton helm/baton-mesh -n baton-system --set policyServer.existingConfigMap=baton-callgraph --set spiffe.namespace=shop --set 'sts.clients[0].id=gateway' --set 'sts.clients[0].tlsClientAuth=true' --set 'sts.clients[1].id=orders' --set 'sts.clients[1].tlsClientAuth=true'`]:
      CLUSTER,
    // `create role --resource` asks the API server which resources exist, even for a client dry run.
    'kubectl -n web create role baton-spiffe-certificate-requester --verb=create --resource=certificaterequests.cert-manager.io':
      {
        ...CLUSTER,
        instead:
          'deploy/overlays/example/identity.yaml is the same Role as a manifest; test/deploy/kustomize.test.ts renders and validates it',
      },
    'kubectl -n web create rolebinding baton-spiffe-certificate-requester --role=baton-spiffe-certificate-requester --serviceaccount=web:gateway':
      { how: 'kubectl-dry-run' },
    'kubectl create namespace web': { how: 'kubectl-dry-run' },
    'kubectl label namespace web baton.dev/inject=enabled': CLUSTER,
    'kubectl -n web create configmap baton-mesh --from-file=policy-signing.pub.pem': { how: 'kubectl-dry-run' },
    'kubectl apply -k deploy/overlays/example-spire': CLUSTER,
    'kubectl -n baton-system create configmap baton-callgraph --from-file=callgraph.yaml=deploy/base/callgraph.yaml': {
      how: 'kubectl-dry-run',
    },
    'kubectl create namespace shop': { how: 'kubectl-dry-run' },
    'kubectl label namespace shop baton.dev/inject=enabled': CLUSTER,
    'kubectl -n shop create configmap baton-mesh --from-file=policy-signing.pub.pem': { how: 'kubectl-dry-run' },
    'baton policy check callgraph.yaml': { how: 'run', expect: /callgraph\.yaml: ok/ },
    'baton policy explain callgraph.yaml --chain gateway,orders --target payments --method POST --path /charges --scope "payments:charge otp" --acr urn:baton:acr:mfa':
      { how: 'run', expect: /^decision: allow\b[\s\S]*payments\.accepts\.charge/ },
    'kubectl -n baton-system create configmap baton-callgraph --from-file=callgraph.yaml --dry-run=client -o yaml | kubectl apply -f -':
      CLUSTER,
    [`kubectl -n shop logs deploy/gateway -c baton-sidecar | grep '"event":"decision"'`]: CLUSTER,
  },
  'docs/nginx.md': {
    ['export BATON_AUTHZ=127.0.0.1:7074 BATON_APP=127.0.0.1:8080 BATON_LISTEN=0.0.0.0:8443 BATON_OUTBOUND_LISTEN=127.0.0.1:7071 BATON_CERT=/var/run/secrets/spiffe.io/tls.crt BATON_KEY=/var/run/secrets/spiffe.io/tls.key BATON_BUNDLE=/var/run/secrets/spiffe.io/ca.crt BATON_CACHE_DIR=/dev/shm/baton-decisions BATON_DECISION_CACHE=baton_decisions']:
      NGINX_DOC,
    [`vars='\${BATON_AUTHZ} \${BATON_APP} \${BATON_LISTEN} \${BATON_OUTBOUND_LISTEN} \${BATON_CERT} \${BATON_KEY} \${BATON_BUNDLE} \${BATON_CACHE_DIR} \${BATON_DECISION_CACHE} \${BATON_TARGET} \${BATON_TARGET_ADDRESS}'`]:
      NGINX_DOC,
    ['mkdir -p /etc/nginx/baton /etc/nginx/conf.d && cp nginx.conf /etc/nginx/ && cp baton/*.conf /etc/nginx/baton/']:
      NGINX_DOC,
    ['envsubst "$vars" < baton/http.conf.template > /etc/nginx/baton/http.conf']: NGINX_DOC,
    ['envsubst "$vars" < conf.d/service.conf.template > /etc/nginx/conf.d/service.conf']: NGINX_DOC,
    ['BATON_TARGET=payments BATON_TARGET_ADDRESS=payments.shop.svc:8443 envsubst "$vars" < conf.d/upstream.conf.template > /etc/nginx/conf.d/upstream-payments.conf']:
      NGINX_DOC,
    ['nginx -t']: NGINX_DOC,
  },
  'docs/observability.md': {
    'baton audit --txn 1UDkBimTvj-fP8jPDM8YYy logs/': {
      how: 'elsewhere',
      test: 'test/e2e/telemetry.test.ts (baton audit over the logs of a real traced mesh; the txn shown is an example)',
    },
  },
  'docs/clients.md': {
    'NODE_USE_ENV_PROXY=1 HTTP_PROXY=http://127.0.0.1:7071 node app.js': {
      how: 'elsewhere',
      test: "test/e2e/clients.test.ts (Node's fetch with NODE_USE_ENV_PROXY=1 and HTTP_PROXY)",
    },
    'HTTP_PROXY=http://127.0.0.1:7071 python3 app.py': {
      how: 'elsewhere',
      test: 'test/e2e/clients.test.ts (urllib, requests and httpx with HTTP_PROXY)',
    },
    'curl -x http://127.0.0.1:7071 -H "baton-context: $HANDLE" http://orders/items': {
      how: 'elsewhere',
      test: 'test/e2e/clients.test.ts (curl with -x)',
    },
  },
  'docs/policy.md': {
    'baton policy explain examples/shop.callgraph.yaml --chain gateway,orders --target payments --method POST --path /charges --scope "payments:charge fido"':
      {
        how: 'run',
        status: 3,
        expect:
          /^decision: deny \(cause: acr\)\nrule: {5}payments\.accepts\.charge {2}\(examples\/shop\.callgraph\.yaml:33:11\)\n/,
      },
  },
  'docs/performance.md': {
    'npm ci': { how: 'elsewhere', test: '.ci/run (npm ci, then npm test)' },
    'npm run bench': BENCH,
    'BENCH_QUICK=1 npm run bench': BENCH,
    'node_modules/.bin/node bench/hop.bench.ts': BENCH,
    'node_modules/.bin/node bench/mtls.bench.ts': BENCH,
    'node_modules/.bin/node bench/authz.bench.ts': BENCH,
    'BENCH_QUICK=1 node_modules/.bin/node bench/mtls.bench.ts': BENCH,
    'node_modules/.bin/node bench/grpc.bench.ts': BENCH,
    'BENCH_QUICK=1 node_modules/.bin/node bench/grpc.bench.ts': {
      how: 'elsewhere',
      test: 'test/bench/grpc.test.ts (the same command, into a temporary results folder)',
    },
    'BENCH_PROFILE=/tmp/prof node_modules/.bin/node bench/grpc.bench.ts': BENCH,
    'node_modules/.bin/node bench/lib/cpuprofile-summary.ts /tmp/prof/CPU.<date>.<time>.<sidecar pid>.0.001.cpuprofile':
      { how: 'elsewhere', test: 'test/bench/cpuprofile-summary.test.ts (the summariser on a profile of known shares)' },
  },
  'docs/policy-server.md': {
    'baton policy-server keygen --out ./keys': { how: 'run' },
    'baton policy-server --policy examples/shop.callgraph.yaml --signing-key keys/policy-signing.key.pem --port 7100 --state /var/lib/baton/policy-version.json --transport plaintext':
      { how: 'run', background: true },
  },
  'docs/rollout.md': {
    'baton policy suggest --logs logs/ --name shop --out shop.callgraph.yaml': { how: 'run' },
    'baton policy check --strict shop.callgraph.yaml': { how: 'run', expect: /shop\.callgraph\.yaml: ok/ },
    'baton policy observed --logs logs/ --policy shop.callgraph.yaml --since 24h': { how: 'run', expect: /gateway/ },
    'baton policy observed --logs logs/ --policy shop.callgraph.yaml --format svg --out observed.svg': { how: 'run' },
  },
  'docs/sts.md': {
    // A synopsis, not a command: its flags are checked against `baton sts --help` below.
    'baton sts --config sts.yaml [--port 7000] [--host 0.0.0.0] [--log-level info]': {
      how: 'elsewhere',
      test: 'this file: "the synopses name only flags that exist"',
    },
  },
};

interface DocCommand {
  readonly file: string;
  readonly line: number;
  readonly command: string;
}

/**
 * The commands of every ```sh, ```bash, ```shell or ```console block, and the
 * `$ `-prompted lines of any other block (a command shown with its output).
 */
export function extractCommands(file: string, text: string): DocCommand[] {
  const out: DocCommand[] = [];
  let inShell = false;
  let inBlock = false;
  let pending = '';
  let pendingLine = 0;
  let heredoc: string | undefined;
  text.split('\n').forEach((raw, index) => {
    const fence = /^\s*```\s*([\w-]*)\s*$/.exec(raw);
    if (fence) {
      inBlock = !inBlock;
      inShell = inBlock && ['sh', 'bash', 'shell', 'console', 'zsh'].includes(fence[1]!);
      pending = '';
      return;
    }
    if (!inBlock) return;
    // A here-document is part of its command: its lines are the command's input, not commands.
    if (heredoc !== undefined) {
      // The block's list indentation (up to three spaces) is not part of the document.
      pending += `\n${raw.replace(/^ {0,3}/, '')}`;
      if (raw.trim() === heredoc) {
        out.push({ file, line: pendingLine, command: pending });
        pending = '';
        heredoc = undefined;
      }
      return;
    }
    const prompted = /^\s*\$\s+/.test(raw);
    if (!inShell && !prompted && pending === '') return;
    let line = raw.trim().replace(/^\$\s+/, '');
    if (pending !== '') line = `${pending} ${line}`;
    else pendingLine = index + 1;
    if (line.endsWith('\\')) {
      pending = line.slice(0, -1).trim();
      return;
    }
    pending = '';
    // A trailing comment is prose; a '#' inside quotes or a word is not a comment.
    const command = line.replace(/\s+#\s.*$/, '').trim();
    if (command === '' || command.startsWith('#')) return;
    const opens = /<<-?\s*'?(\w+)'?\s*$/.exec(command);
    if (opens !== null) {
      heredoc = opens[1];
      pending = command;
      return;
    }
    out.push({ file, line: pendingLine, command });
  });
  return out;
}

function documented(): DocCommand[] {
  const files = [
    'README.md',
    ...readdirSync(join(ROOT, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .sort()
      .map((f) => `docs/${f}`),
  ];
  return files.flatMap((file) => extractCommands(file, readFileSync(join(ROOT, file), 'utf8')));
}

const DOCUMENTED = documented();

describe('the commands in README.md and docs/', () => {
  it('are all known: a new command says how it is tested', () => {
    const unknown = DOCUMENTED.filter((c) => COMMANDS[c.file]?.[c.command] === undefined);
    assert.equal(
      unknown.length,
      0,
      `commands in the docs that test/docs/commands.test.ts does not know; add each to COMMANDS with how it is covered (run, kubectl-dry-run, elsewhere, not-here):\n${unknown.map((c) => `  ${c.file}:${c.line}: ${c.command}`).join('\n')}`,
    );
    const stale = Object.entries(COMMANDS).flatMap(([file, commands]) =>
      Object.keys(commands)
        .filter((command) => !DOCUMENTED.some((c) => c.file === file && c.command === command))
        .map((command) => `  ${file}: ${command}`),
    );
    assert.deepEqual(stale, [], 'COMMANDS lists commands the docs no longer have: remove them');
  });

  it('says loudly which ones cannot run here, and why', (t) => {
    const notHere = DOCUMENTED.flatMap((c) => {
      const coverage = COMMANDS[c.file]?.[c.command];
      return coverage?.how === 'not-here'
        ? [
            `  ${c.file}:${c.line}: ${c.command}\n      needs ${coverage.needs}${coverage.instead === undefined ? '' : `; instead: ${coverage.instead}`}`,
          ]
        : [];
    });
    assert.ok(notHere.length > 0);
    const message = `!!!!! ${notHere.length} documented commands were NOT run (no Docker engine, no Kubernetes cluster, no benchmark here):\n${notHere.join('\n')}`;
    t.diagnostic(message);
    process.stdout.write(`\n${message}\n\n`);
  });

  it('the synopses name only flags that exist', async () => {
    const help = spawnSync(process.execPath, [join(ROOT, 'bin/baton.js'), 'sts', '--help'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(help.status, 0, help.stderr);
    for (const flag of ['--config', '--port', '--host', '--log-level'])
      assert.ok(help.stdout.includes(flag), `baton sts --help lists ${flag}`);
  });

  describe('run against the demo mesh, with the same policy as compose', { timeout: 300_000 }, () => {
    const work = mkdtempSync(join(tmpdir(), 'baton-docs-'));
    const bin = join(work, '.bin');
    let mesh: Mesh;
    let env: Record<string, string>;

    before(
      async () => {
        mkdirSync(bin);
        // `baton` as the installed bin would be, running this checkout's sources on the Node.js 24 that runs the tests.
        writeFileSync(
          join(bin, 'baton'),
          `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, 'bin/baton.js')}" "$@"\n`,
        );
        chmodSync(join(bin, 'baton'), 0o755);
        // kubectl and helm at their minimum versions: the system's, or the npm package's (scripts/kube-tools.ts).
        for (const tool of [kubeTool('kubectl'), kubeTool('helm')])
          if (tool.source === 'npm package') symlinkSync(tool.path, join(bin, tool.name));
        mkdirSync(join(work, 'logs'));
        // What the docs refer to relative to a checkout (deploy/, examples/), and the user's own call graph.
        symlinkSync(join(ROOT, 'deploy'), join(work, 'deploy'));
        symlinkSync(join(ROOT, 'examples'), join(work, 'examples'));
        cpSync(join(ROOT, 'examples/shop.callgraph.yaml'), join(work, 'callgraph.yaml'));
        // Compose's policy is examples/compose/policy/callgraph.yaml, kept equal to the shop policy the demo runs by default.
        mesh = await startMesh({ logDir: join(work, 'logs') });
        env = {
          ...process.env,
          PATH: `${bin}${delimiter}${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`,
          KUBECONFIG: join(work, 'no-kubeconfig'),
          HOME: work,
        } as Record<string, string>;
      },
      { timeout: 120_000 },
    );
    after(async () => {
      await mesh?.stop();
      rmSync(work, { recursive: true, force: true });
    });

    /** The only changes made to a documented command before it runs. */
    function substitute(command: string, ports: { policyServer?: number } = {}): string {
      let out = command
        .replaceAll('http://localhost:9000', mesh.idpUrl)
        // Compose publishes the gateway's plaintext listener for the ingress side on 7080; the demo's is `entry`.
        .replaceAll('http://localhost:7080', `http://127.0.0.1:${mesh.services.gateway.entry}`)
        .replaceAll('/var/lib/baton/', `${work}/var/lib/baton/`)
        .replace(/(^|\$\(|\|\s*)npx baton /g, '$1baton ');
      if (ports.policyServer !== undefined) out = out.replace('--port 7100', `--port ${ports.policyServer}`);
      return out;
    }

    /** Runs a file's `run` commands in order in one shell (so variables carry over), each output captured apart. */
    function runFile(file: string): Map<string, { status: number; output: string }> {
      const commands = DOCUMENTED.filter(
        (c) =>
          c.file === file &&
          COMMANDS[file]?.[c.command]?.how === 'run' &&
          (COMMANDS[file]?.[c.command] as { background?: true }).background !== true,
      );
      assert.ok(commands.length > 0, `${file} has commands to run`);
      // Markers on lines of their own: a command's output need not end with a newline.
      const script = commands
        .map(
          (c, i) =>
            `printf '\\n@@@ ${i} start\\n'\n( ${substitute(c.command)} ) 2>&1 || printf '\\n@@@ ${i} failed %s\\n' $?\n`,
        )
        .join('');
      // Variable assignments must stay in this shell, not a subshell.
      const inShell = script.replace(/\( (\w+=\$\(.*\)) \) 2>&1/g, '$1');
      const result = spawnSync('sh', ['-c', inShell], { cwd: work, env, encoding: 'utf8', timeout: 120_000 });
      assert.equal(result.status, 0, result.stderr);
      const outputs = new Map<string, { status: number; output: string }>();
      const parts = result.stdout.split(/^@@@ (\d+) start\n/m);
      for (let i = 1; i < parts.length; i += 2) {
        const command = commands[Number(parts[i])]!;
        const text = parts[i + 1] ?? '';
        const failed = /\n@@@ \d+ failed (\d+)\n$/.exec(text);
        outputs.set(command.command, {
          status: failed ? Number(failed[1]) : 0,
          output: failed ? text.slice(0, failed.index) : text,
        });
      }
      for (const c of commands) {
        const got = outputs.get(c.command);
        assert.ok(got, `${file}:${c.line}: ${c.command} ran`);
        const coverage = COMMANDS[file]?.[c.command] as { expect?: RegExp; status?: number };
        assert.equal(
          got.status,
          coverage.status ?? 0,
          `${file}:${c.line}: ${c.command}\nexited ${got.status}:\n${got.output.slice(-2000)}`,
        );
        const expect = coverage.expect;
        if (expect !== undefined) assert.match(got.output, expect, `${file}:${c.line}: ${c.command}`);
      }
      return outputs;
    }

    it('docs/docker-compose.md: the quickstart token reaches payments, and the direct charge is refused', () => {
      runFile('docs/docker-compose.md');
    });

    it('README.md: the installed bin', () => {
      runFile('README.md');
    });

    it('docs/kubernetes.md: keys, the Redis secrets and the policy commands run; the kubectl ones pass a client dry run', () => {
      runFile('docs/kubernetes.md');
      const dryRuns = DOCUMENTED.filter(
        (c) => c.file === 'docs/kubernetes.md' && COMMANDS[c.file]?.[c.command]?.how === 'kubectl-dry-run',
      );
      assert.ok(dryRuns.length >= 8);
      for (const c of dryRuns) {
        const result = spawnSync('sh', ['-c', `${c.command} --dry-run=client -o yaml`], {
          cwd: work,
          env,
          encoding: 'utf8',
          timeout: 30_000,
        });
        assert.equal(result.status, 0, `docs/kubernetes.md:${c.line}: ${c.command}\n${result.stderr}`);
        assert.match(result.stdout, /^apiVersion: (v1|rbac\.authorization\.k8s\.io\/v1)\n/m, c.command);
        if (c.command.includes('baton-redis-acl'))
          assert.match(result.stdout, /users\.acl: /, 'the ACL file baton redis-acl wrote is in the Secret');
      }
    });

    it('docs/policy-server.md: keygen, then the server with a --state folder that does not exist yet becomes ready', async () => {
      runFile('docs/policy-server.md');
      const port = await freePort();
      const command = DOCUMENTED.find(
        (c) =>
          c.file === 'docs/policy-server.md' &&
          (COMMANDS[c.file]?.[c.command] as { background?: true }).background === true,
      )!;
      const child = spawnSync(
        'sh',
        ['-c', `${substitute(command.command, { policyServer: port })} > server.log 2>&1 & echo $!`],
        { cwd: work, env, encoding: 'utf8' },
      );
      const pid = Number(child.stdout.trim());
      try {
        await waitFor(
          async () =>
            (await fetch(`http://127.0.0.1:${port}/readyz`).then(
              (r) => r.status,
              () => 0,
            )) === 200,
          { what: 'the documented policy server to be ready', timeoutMs: 30_000 },
        );
        assert.ok(
          existsSync(join(work, 'var/lib/baton/policy-version.json')),
          'the state file was written into the folder it created',
        );
      } finally {
        process.kill(pid, 'SIGTERM');
      }
    });

    it('docs/rollout.md: suggest, check and observed over the audit logs that the compose quickstart left', () => {
      // The compose quickstart runs again here, whatever ran before: its traffic through the mesh is what logs/ holds.
      runFile('docs/docker-compose.md');
      runFile('docs/rollout.md');
      assert.match(readFileSync(join(work, 'observed.svg'), 'utf8'), /<svg/);
      assert.match(readFileSync(join(work, 'shop.callgraph.yaml'), 'utf8'), /kind: CallGraph/);
    });
  });
});
