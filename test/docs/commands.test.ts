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
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Mesh, startMesh } from '../../src/demo/mesh.ts';
import { freePort, waitFor } from '../helpers/net.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

type Coverage =
  | { readonly how: 'run'; readonly expect?: RegExp; readonly status?: number; readonly background?: true }
  | { readonly how: 'kubectl-dry-run' }
  | { readonly how: 'elsewhere'; readonly test: string }
  | { readonly how: 'not-here'; readonly needs: 'Docker' | 'a Kubernetes cluster' | 'a quiet machine for minutes (the benchmark)' | 'the npm registry with the package published'; readonly instead?: string };

const DOCKER = { how: 'not-here', needs: 'Docker', instead: 'test/deploy/dockerfile.test.ts runs the Dockerfile stages by hand; test/deploy/compose.test.ts checks the compose file' } as const;
const CLUSTER = { how: 'not-here', needs: 'a Kubernetes cluster', instead: 'test/deploy/kustomize.test.ts and helm.test.ts render and validate the manifests' } as const;
const BENCH = { how: 'not-here', needs: 'a quiet machine for minutes (the benchmark)', instead: 'test/bench/smoke.test.ts' } as const;

/** File → command (as extracted) → coverage. */
const COMMANDS: Readonly<Record<string, Readonly<Record<string, Coverage>>>> = {
  'README.md': {
    'npm install && npm start': { how: 'elsewhere', test: 'test/e2e/demo.test.ts (npm start runs baton demo)' },
    'npm test': { how: 'elsewhere', test: 'this run: npm test is what runs this file' },
    'npm install baton-mesh': { how: 'not-here', needs: 'the npm registry with the package published', instead: 'test/package/pack.test.ts installs the packed tarball into an empty project' },
    'npx baton --help': { how: 'run', expect: /Usage: baton <command>/ },
    'npx baton policy check callgraph.yaml': { how: 'run', expect: /callgraph\.yaml: ok/ },
    'docker build -t baton-mesh:dev .': DOCKER,
    'docker run --rm baton-mesh:dev --help': DOCKER,
  },
  'docs/docker-compose.md': {
    'docker compose up --build': DOCKER,
    [`TOKEN=$(curl -s -d sub=alice -d 'scope=shop orders:write payments:charge otp' -d acr=urn:baton:acr:mfa http://localhost:9000/dev/token | sed 's/.*"access_token":"\\([^"]*\\)".*/\\1/')`]: { how: 'run' },
    'curl -s -X POST -H "Authorization: Bearer $TOKEN" http://localhost:7070/checkout': { how: 'run', expect: /"chain":\s*"gateway,orders"/ },
    'curl -s -X POST -H "Authorization: Bearer $TOKEN" http://localhost:7070/direct-charge': { how: 'run', expect: /"status":\s*403[\s\S]*payments\.accepts|payments\.accepts[\s\S]*"status":\s*403/ },
  },
  'docs/kubernetes.md': {
    'kubectl create namespace baton-system': { how: 'kubectl-dry-run' },
    'openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out policy-signing.key.pem': { how: 'run' },
    'openssl pkey -in policy-signing.key.pem -pubout -out policy-signing.pub.pem': { how: 'run' },
    'kubectl -n baton-system create secret generic baton-policy-signing-key --from-file=policy-signing.key.pem': { how: 'kubectl-dry-run' },
    'kubectl -n baton-system create configmap baton-mesh --from-file=policy-signing.pub.pem': { how: 'kubectl-dry-run' },
    'openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out sts-1.pem': { how: 'run' },
    'kubectl -n baton-system create secret generic baton-sts-keys --from-file=sts-1.pem': { how: 'kubectl-dry-run' },
    "openssl rand -base64 32 | tr -d '\\n' > gateway.secret": { how: 'run' },
    'GATEWAY_HASH=$(npx baton sts hash-secret < gateway.secret)': { how: 'run' },
    'kubectl -n baton-system create secret generic baton-sts-clients --from-literal=clients="[{id: gateway, secretHash: \\"$GATEWAY_HASH\\"}]"': { how: 'kubectl-dry-run' },
    'kubectl -n baton-system create configmap baton-callgraph --from-file=callgraph.yaml=deploy/base/callgraph.yaml': { how: 'kubectl-dry-run' },
    'kubectl apply -k deploy/base': CLUSTER,
    'helm install baton helm/baton -n baton-system --set policyServer.existingConfigMap=baton-callgraph': CLUSTER,
    'kubectl create namespace shop': { how: 'kubectl-dry-run' },
    'kubectl label namespace shop baton.dev/inject=enabled': CLUSTER,
    'kubectl -n shop create configmap baton-mesh --from-file=policy-signing.pub.pem': { how: 'kubectl-dry-run' },
    'kubectl -n shop create secret generic baton-client-gateway --from-file=clientSecret=gateway.secret': { how: 'kubectl-dry-run' },
    'baton policy check callgraph.yaml': { how: 'run', expect: /callgraph\.yaml: ok/ },
    'baton policy explain callgraph.yaml --chain gateway,orders --target payments --method POST --path /charges --scope "payments:charge otp" --acr urn:baton:acr:mfa': { how: 'run', expect: /^decision: allow\b[\s\S]*payments\.accepts\.charge/ },
    'kubectl -n baton-system create configmap baton-callgraph --from-file=callgraph.yaml --dry-run=client -o yaml | kubectl apply -f -': CLUSTER,
    [`kubectl -n shop logs deploy/gateway -c baton-sidecar | grep '"event":"decision"'`]: CLUSTER,
  },
  'docs/observability.md': {
    'baton audit --txn 1UDkBimTvj-fP8jPDM8YYy logs/': { how: 'elsewhere', test: 'test/e2e/telemetry.test.ts (baton audit over the logs of a real traced mesh; the txn shown is an example)' },
  },
  'docs/policy.md': {
    'baton policy explain examples/shop.callgraph.yaml --chain gateway,orders --target payments --method POST --path /charges --scope "payments:charge fido"': {
      how: 'run',
      status: 3,
      expect: /^decision: deny \(cause: acr\)\nrule: {5}payments\.accepts\.charge {2}\(examples\/shop\.callgraph\.yaml:33:11\)\n/,
    },
  },
  'docs/performance.md': {
    'npm ci': { how: 'elsewhere', test: '.ci/run (npm ci, then npm test)' },
    'npm run bench': BENCH,
    'BENCH_QUICK=1 npm run bench': BENCH,
    'node_modules/.bin/node bench/hop.bench.ts': BENCH,
  },
  'docs/policy-server.md': {
    'baton policy-server keygen --out ./keys': { how: 'run' },
    'baton policy-server --policy examples/shop.callgraph.yaml --signing-key keys/policy-signing.key.pem --port 7300 --state /var/lib/baton/policy-version.json': { how: 'run', background: true },
  },
  'docs/rollout.md': {
    'baton policy suggest --logs logs/ --name shop --out shop.callgraph.yaml': { how: 'run' },
    'baton policy check --strict shop.callgraph.yaml': { how: 'run', expect: /shop\.callgraph\.yaml: ok/ },
    'baton policy observed --logs logs/ --policy shop.callgraph.yaml --since 24h': { how: 'run', expect: /gateway/ },
    'baton policy observed --logs logs/ --policy shop.callgraph.yaml --format svg --out observed.svg': { how: 'run' },
  },
  'docs/sts.md': {
    // A synopsis, not a command: its flags are checked against `baton sts --help` below.
    'baton sts --config sts.yaml [--port 7000] [--host 0.0.0.0] [--log-level info]': { how: 'elsewhere', test: 'this file: "the synopses name only flags that exist"' },
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
  text.split('\n').forEach((raw, index) => {
    const fence = /^\s*```\s*([\w-]*)\s*$/.exec(raw);
    if (fence) {
      inBlock = !inBlock;
      inShell = inBlock && ['sh', 'bash', 'shell', 'console', 'zsh'].includes(fence[1]!);
      pending = '';
      return;
    }
    if (!inBlock) return;
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
    out.push({ file, line: pendingLine, command });
  });
  return out;
}

function documented(): DocCommand[] {
  const files = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];
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
    const stale = Object.entries(COMMANDS).flatMap(([file, commands]) => Object.keys(commands).filter((command) => !DOCUMENTED.some((c) => c.file === file && c.command === command)).map((command) => `  ${file}: ${command}`));
    assert.deepEqual(stale, [], 'COMMANDS lists commands the docs no longer have: remove them');
  });

  it('says loudly which ones cannot run here, and why', (t) => {
    const notHere = DOCUMENTED.flatMap((c) => {
      const coverage = COMMANDS[c.file]?.[c.command];
      return coverage?.how === 'not-here' ? [`  ${c.file}:${c.line}: ${c.command}\n      needs ${coverage.needs}${coverage.instead === undefined ? '' : `; instead: ${coverage.instead}`}`] : [];
    });
    assert.ok(notHere.length > 0);
    const message = `!!!!! ${notHere.length} documented commands were NOT run (no Docker engine, no Kubernetes cluster, no benchmark here):\n${notHere.join('\n')}`;
    t.diagnostic(message);
    process.stdout.write(`\n${message}\n\n`);
  });

  it('the synopses name only flags that exist', async () => {
    const help = spawnSync(process.execPath, [join(ROOT, 'bin/baton.js'), 'sts', '--help'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(help.status, 0, help.stderr);
    for (const flag of ['--config', '--port', '--host', '--log-level']) assert.ok(help.stdout.includes(flag), `baton sts --help lists ${flag}`);
  });

  describe('run against the demo mesh, with the same policy as compose', { timeout: 300_000 }, () => {
    const work = mkdtempSync(join(tmpdir(), 'baton-docs-'));
    const bin = join(work, '.bin');
    let mesh: Mesh;
    let env: Record<string, string>;

    before(async () => {
      mkdirSync(bin);
      // `baton` as the installed bin would be, running this checkout's sources on the Node.js 24 that runs the tests.
      writeFileSync(join(bin, 'baton'), `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, 'bin/baton.js')}" "$@"\n`);
      chmodSync(join(bin, 'baton'), 0o755);
      mkdirSync(join(work, 'logs'));
      // What the docs refer to relative to a checkout (deploy/, examples/), and the user's own call graph.
      symlinkSync(join(ROOT, 'deploy'), join(work, 'deploy'));
      symlinkSync(join(ROOT, 'examples'), join(work, 'examples'));
      cpSync(join(ROOT, 'examples/shop.callgraph.yaml'), join(work, 'callgraph.yaml'));
      // Compose's policy is examples/compose/policy/callgraph.yaml, kept equal to the shop policy the demo runs by default.
      mesh = await startMesh({ logDir: join(work, 'logs') });
      env = { ...process.env, PATH: `${bin}${delimiter}${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`, KUBECONFIG: join(work, 'no-kubeconfig'), HOME: work } as Record<string, string>;
    }, { timeout: 120_000 });
    after(async () => {
      await mesh?.stop();
      rmSync(work, { recursive: true, force: true });
    });

    /** The only changes made to a documented command before it runs. */
    function substitute(command: string, ports: { policyServer?: number } = {}): string {
      let out = command
        .replaceAll('http://localhost:9000', mesh.idpUrl)
        .replaceAll('http://localhost:7070', `http://127.0.0.1:${mesh.services.gateway.inbound}`)
        .replaceAll('/var/lib/baton/', `${work}/var/lib/baton/`)
        .replace(/(^|\$\(|\|\s*)npx baton /g, '$1baton ');
      if (ports.policyServer !== undefined) out = out.replace('--port 7300', `--port ${ports.policyServer}`);
      return out;
    }

    /** Runs a file's `run` commands in order in one shell (so variables carry over), each output captured apart. */
    function runFile(file: string): Map<string, { status: number; output: string }> {
      const commands = DOCUMENTED.filter((c) => c.file === file && COMMANDS[file]?.[c.command]?.how === 'run' && (COMMANDS[file]?.[c.command] as { background?: true }).background !== true);
      assert.ok(commands.length > 0, `${file} has commands to run`);
      // Markers on lines of their own: a command's output need not end with a newline.
      const script = commands.map((c, i) => `printf '\\n@@@ ${i} start\\n'\n( ${substitute(c.command)} ) 2>&1 || printf '\\n@@@ ${i} failed %s\\n' $?\n`).join('');
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
        outputs.set(command.command, { status: failed ? Number(failed[1]) : 0, output: failed ? text.slice(0, failed.index) : text });
      }
      for (const c of commands) {
        const got = outputs.get(c.command);
        assert.ok(got, `${file}:${c.line}: ${c.command} ran`);
        const coverage = COMMANDS[file]?.[c.command] as { expect?: RegExp; status?: number };
        assert.equal(got.status, coverage.status ?? 0, `${file}:${c.line}: ${c.command}\nexited ${got.status}:\n${got.output.slice(-2000)}`);
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

    it('docs/kubernetes.md: keys, the client hash and the policy commands run; the kubectl ones pass a client dry run', () => {
      runFile('docs/kubernetes.md');
      const hash = spawnSync('sh', ['-c', substitute('GATEWAY_HASH=$(npx baton sts hash-secret < gateway.secret); printf %s "$GATEWAY_HASH"')], { cwd: work, env, encoding: 'utf8' });
      assert.match(hash.stdout, /^scrypt\$15\$8\$1\$[\w-]+\$[\w-]+$/);
      const dryRuns = DOCUMENTED.filter((c) => c.file === 'docs/kubernetes.md' && COMMANDS[c.file]?.[c.command]?.how === 'kubectl-dry-run');
      assert.ok(dryRuns.length >= 8);
      for (const c of dryRuns) {
        const result = spawnSync('sh', ['-c', `GATEWAY_HASH='${hash.stdout}'; ${c.command} --dry-run=client -o yaml`], { cwd: work, env, encoding: 'utf8', timeout: 30_000 });
        assert.equal(result.status, 0, `docs/kubernetes.md:${c.line}: ${c.command}\n${result.stderr}`);
        assert.match(result.stdout, /^apiVersion: v1\n/m, c.command);
        if (c.command.includes('baton-sts-clients')) {
          const clients = Buffer.from(/clients: (\S+)/.exec(result.stdout)![1]!, 'base64').toString();
          assert.equal(clients, `[{id: gateway, secretHash: "${hash.stdout}"}]`);
        }
      }
    });

    it('docs/policy-server.md: keygen, then the server with a --state folder that does not exist yet becomes ready', async () => {
      runFile('docs/policy-server.md');
      const port = await freePort();
      const command = DOCUMENTED.find((c) => c.file === 'docs/policy-server.md' && (COMMANDS[c.file]?.[c.command] as { background?: true }).background === true)!;
      const child = spawnSync('sh', ['-c', `${substitute(command.command, { policyServer: port })} > server.log 2>&1 & echo $!`], { cwd: work, env, encoding: 'utf8' });
      const pid = Number(child.stdout.trim());
      try {
        await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status, () => 0)) === 200, { what: 'the documented policy server to be ready', timeoutMs: 30_000 });
        assert.ok(existsSync(join(work, 'var/lib/baton/policy-version.json')), 'the state file was written into the folder it created');
      } finally {
        process.kill(pid, 'SIGTERM');
      }
    });

    it('docs/rollout.md: suggest, check and observed over the audit logs that the compose quickstart left', () => {
      // The quickstart test above sent traffic through the mesh, whose processes log into logs/.
      runFile('docs/docker-compose.md');
      runFile('docs/rollout.md');
      assert.match(readFileSync(join(work, 'observed.svg'), 'utf8'), /<svg/);
      assert.match(readFileSync(join(work, 'shop.callgraph.yaml'), 'utf8'), /kind: CallGraph/);
    });
  });
});
