import { mkdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { EnvHttpProxyAgent, setGlobalDispatcher } from 'undici';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../config/config-error.ts';
import { fetchReadsEnvProxy, startDemoApp } from '../demo/apps.ts';
import { startDevIdentityProvider } from '../demo/dev-idp.ts';
import { DEMO_POLICY, startMesh } from '../demo/mesh.ts';
import { DEMO_USER, formatScenarios, runScenarios, type ScenarioResult } from '../demo/scenario.ts';
import { type CliContext, type Command, UsageError } from './command.ts';

const HELP = `Usage: baton demo [--keep] [--json] [--logs DIR] [--issuers FILE] [--policy FILE]
       baton demo app --name gateway|orders|payments --port N --outbound URL [--host H]
                      [--calls proxy|host] [--charge grpc|http]
       baton demo idp --port N [--host H] [--issuer URL]

Runs the whole mesh on loopback, with no Docker and no Redis: a dev identity
provider, the policy server with the example shop policy, the STS, and the
gateway, orders and payments services each behind its own sidecar. Drives
one chain the policy allows and one it refuses, and prints what each hop saw.

Options:
  --keep       keep the mesh running and print how to call it with curl (Ctrl-C stops it)
  --json       print the results as JSON
  --logs DIR   also write every process's JSON log to DIR/<process>.log (DIR is
               created; lines are appended), and print the 'baton audit',
               'baton policy observed' and 'baton policy suggest' commands to
               try on them
  --issuers FILE  a YAML list of externalIssuers entries (docs/identity-providers.md):
               your own identity providers, trusted at the gateway beside the dev IdP
  --policy FILE   another CallGraph instead of examples/shop.callgraph.yaml
               (the built-in scenarios assume the example policy)

'demo app' and 'demo idp' run one demo service or the dev IdP on its own
(the docker-compose mesh uses them). A demo app calls the next service with
plain fetch through the proxy its environment names (HTTP_PROXY,
NODE_USE_ENV_PROXY=1), or with --calls host by sending to --outbound with the
service in Host (for nginx, which opens no CONNECT tunnel: docs/nginx.md);
orders charges payments over gRPC, or with --charge http as POST /charges.`;

export const demoCommand: Command = {
  summary: 'run the whole mesh on this machine and drive an allowed and a denied chain',
  help: HELP,
  // One text: its usage lines cover 'demo app' and 'demo idp'.
  subcommands: ['app', 'idp'],
  helpFor: async () => HELP,
  async run(args, context) {
    const [first, ...rest] = args;
    if (first === 'app') return await runApp(rest, context);
    if (first === 'idp') return await runIdp(rest, context);
    const { values } = parseArgs({
      args: [...args],
      options: {
        keep: { type: 'boolean' },
        json: { type: 'boolean' },
        logs: { type: 'string' },
        issuers: { type: 'string' },
        policy: { type: 'string' },
      },
      strict: true,
    });
    const externalIssuers = values.issuers === undefined ? [] : readIssuers(values.issuers);
    const logDir = values.logs === undefined ? undefined : resolve(values.logs);
    if (logDir !== undefined) mkdirSync(logDir, { recursive: true });
    if (!values.json)
      context.stdout.write(
        'baton demo: starting the mesh on 127.0.0.1 with mTLS (dev IdP, policy server, STS, 3 apps, 3 sidecars; development certificates in a temporary directory)…\n',
      );
    const mesh = await startMesh({
      externalIssuers,
      ...(values.policy === undefined ? {} : { policyFile: values.policy }),
      ...(logDir === undefined ? {} : { logDir }),
    });
    let stopping = false;
    try {
      const results = await runScenarios(mesh);
      if (values.json) context.stdout.write(JSON.stringify(results, null, 2) + '\n');
      else context.stdout.write(formatScenarios(results) + '\n');
      if (logDir !== undefined && !values.json) context.stdout.write(tryTheLogs(logDir, results, cliPrefix(context)));
      if (values.keep) {
        // Listening before saying "Ctrl-C stops": a signal sent the moment that line appears must stop the mesh, not kill this process.
        const signalled = new Promise<NodeJS.Signals>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        context.stdout.write(keepInstructions(mesh.idpUrl, mesh.services.gateway.entry));
        const signal = await signalled;
        stopping = true;
        context.stdout.write(`\nbaton demo: ${signal}, stopping the mesh (${mesh.processes.length} processes)…\n`);
      }
      return results.every((r) => r.passed) ? 0 : 1;
    } finally {
      await mesh.stop();
      if (stopping)
        context.stdout.write(`baton demo: stopped${logDir === undefined ? '' : `; the logs stay in ${logDir}`}.\n`);
    }
  },
};

/** How to run baton from where the user stands: through npm in a checkout (`npm start`), else the installed bin. */
function cliPrefix(context: CliContext): string {
  const event = context.env.npm_lifecycle_event;
  return event === 'start' || event === 'baton' ? 'npm run -s baton --' : 'baton';
}

function tryTheLogs(logDir: string, results: readonly ScenarioResult[], baton: string): string {
  const allowed = results.find((r) => r.name === 'allowed');
  const request = allowed?.hops[0]?.request;
  return `
Every process's log is in ${logDir}. Try the audit tools on it:

  ${baton} audit --txn=${allowed?.txn ?? 'TXN'} ${logDir}
  ${baton} audit --request=${request ?? 'REQUEST'} ${logDir}
  ${baton} policy observed --policy ${DEMO_POLICY} --logs ${logDir}
  ${baton} policy suggest --logs ${logDir}

audit replays one request hop by hop with the rule that decided each; observed
compares the traffic with the policy (edges used, unused, undeclared); suggest
writes the smallest policy that allows exactly what was seen.
`;
}

/** A YAML list of externalIssuers entries (docs/identity-providers.md); each part validates them again with its own schema. */
function readIssuers(file: string): Record<string, unknown>[] {
  let parsed: unknown;
  try {
    parsed = parseYaml(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new ConfigError(
      file,
      '',
      'a readable YAML list of externalIssuers entries',
      (error as { code?: string }).code ?? 'unparseable',
    );
  }
  if (
    !Array.isArray(parsed) ||
    !parsed.every((e) => typeof e === 'object' && e !== null && typeof (e as { issuer?: unknown }).issuer === 'string')
  ) {
    throw new ConfigError(file, '', 'a YAML list of externalIssuers entries, each with an issuer', 'another shape');
  }
  return parsed as Record<string, unknown>[];
}

function keepInstructions(idpUrl: string, gatewayPort: number): string {
  return `
The mesh is up. Get a user token from the dev IdP and call the gateway:

  TOKEN=$(curl -s -d sub=alice -d 'scope=${DEMO_USER.scope}' -d acr=${DEMO_USER.acr} ${idpUrl}/dev/token | sed 's/.*"access_token":"\\([^"]*\\)".*/\\1/')
  curl -s -w '\\nHTTP %{http_code}\\n' -X POST -H "Authorization: Bearer $TOKEN" http://127.0.0.1:${gatewayPort}/checkout        # 200
  curl -s -w '\\nHTTP %{http_code}\\n' -X POST -H "Authorization: Bearer $TOKEN" http://127.0.0.1:${gatewayPort}/direct-charge   # 403

With --issuers, send a token from your own identity provider the same way:
every hop's subject, subject type and issuer are in the answer.

Ctrl-C stops the mesh.
`;
}

async function runApp(args: readonly string[], context: CliContext): Promise<number> {
  const { values } = parseArgs({
    args: [...args],
    options: {
      name: { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      outbound: { type: 'string' },
      calls: { type: 'string' },
      charge: { type: 'string' },
    },
    strict: true,
  });
  const name = values.name;
  if (name !== 'gateway' && name !== 'orders' && name !== 'payments')
    throw new UsageError('--name must be gateway, orders or payments');
  if (values.outbound === undefined) throw new UsageError("--outbound URL (the sidecar's outbound port) is required");
  const calls = values.calls ?? 'proxy';
  if (calls !== 'proxy' && calls !== 'host') throw new UsageError(`--calls must be proxy or host, got ${calls}`);
  const chargeOver = values.charge ?? 'grpc';
  if (chargeOver !== 'grpc' && chargeOver !== 'http')
    throw new UsageError(`--charge must be grpc or http, got ${chargeOver}`);
  // Node.js before 22.21 ignores NODE_USE_ENV_PROXY: undici's EnvHttpProxyAgent reads the same variables (src/demo/apps.ts).
  if (!fetchReadsEnvProxy() && process.env.NODE_USE_ENV_PROXY === '1') setGlobalDispatcher(new EnvHttpProxyAgent());
  const app = await startDemoApp({
    name,
    port: Number(values.port ?? 8080),
    host: values.host ?? '127.0.0.1',
    outbound: values.outbound,
    calls,
    charge: chargeOver,
  });
  context.stdout.write(JSON.stringify({ msg: 'demo app listening', service: name, port: app.port }) + '\n');
  await untilSignal();
  await app.close();
  return 0;
}

async function runIdp(args: readonly string[], context: CliContext): Promise<number> {
  const { values } = parseArgs({
    args: [...args],
    options: { port: { type: 'string' }, host: { type: 'string' }, issuer: { type: 'string' } },
    strict: true,
  });
  const idp = await startDevIdentityProvider({
    port: Number(values.port ?? 9000),
    host: values.host ?? '127.0.0.1',
    issuer: values.issuer,
  });
  context.stdout.write(
    JSON.stringify({
      msg: 'dev idp listening',
      issuer: idp.issuer,
      warning: 'development identity provider: issues tokens to anyone',
    }) + '\n',
  );
  await untilSignal();
  await idp.close();
  return 0;
}

function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
}
