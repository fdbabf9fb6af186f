import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../config/config-error.ts';
import { startDemoApp, type DemoServiceName } from '../demo/apps.ts';
import { startDevIdentityProvider } from '../demo/dev-idp.ts';
import { startMesh } from '../demo/mesh.ts';
import { DEMO_USER, formatScenarios, runScenarios } from '../demo/scenario.ts';
import { type CliContext, type Command, UsageError } from './command.ts';

const HELP = `Usage: baton demo [--keep] [--json] [--issuers FILE] [--policy FILE]
       baton demo app --name gateway|orders|payments --port N --outbound URL [--host H]
       baton demo idp --port N [--host H] [--issuer URL]

Runs the whole mesh on loopback, with no Docker and no Redis: a dev identity
provider, the policy server with the example shop policy, the STS, and the
gateway, orders and payments services each behind its own sidecar. Drives
one chain the policy allows and one it refuses, and prints what each hop saw.

Options:
  --keep   keep the mesh running and print how to call it with curl (Ctrl-C stops it)
  --json   print the results as JSON
  --issuers FILE  a YAML list of externalIssuers entries (docs/identity-providers.md):
           your own identity providers, trusted at the gateway beside the dev IdP
  --policy FILE   another CallGraph instead of examples/shop.callgraph.yaml
           (the built-in scenarios assume the example policy)

'demo app' and 'demo idp' run one demo service or the dev IdP on its own
(the docker-compose mesh uses them).`;

export const demoCommand: Command = {
  summary: 'run the whole mesh on this machine and drive an allowed and a denied chain',
  help: HELP,
  async run(args, context) {
    const [first, ...rest] = args;
    if (first === 'app') return await runApp(rest, context);
    if (first === 'idp') return await runIdp(rest, context);
    const { values } = parseArgs({
      args: [...args],
      options: { keep: { type: 'boolean' }, json: { type: 'boolean' }, issuers: { type: 'string' }, policy: { type: 'string' } },
      strict: true,
    });
    const externalIssuers = values.issuers === undefined ? [] : readIssuers(values.issuers);
    if (!values.json) context.stdout.write('baton demo: starting the mesh on 127.0.0.1 (dev IdP, policy server, STS, 3 apps, 3 sidecars)…\n');
    const mesh = await startMesh({ externalIssuers, ...(values.policy === undefined ? {} : { policyFile: values.policy }) });
    try {
      const results = await runScenarios(mesh);
      if (values.json) context.stdout.write(JSON.stringify(results, null, 2) + '\n');
      else context.stdout.write(formatScenarios(results) + '\n');
      if (values.keep) {
        context.stdout.write(keepInstructions(mesh.idpUrl, mesh.services.gateway.inbound));
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
      }
      return results.every((r) => r.passed) ? 0 : 1;
    } finally {
      await mesh.stop();
    }
  },
};

/** A YAML list of externalIssuers entries (docs/identity-providers.md); each part validates them again with its own schema. */
function readIssuers(file: string): Record<string, unknown>[] {
  let parsed: unknown;
  try {
    parsed = parseYaml(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new ConfigError(file, '', 'a readable YAML list of externalIssuers entries', (error as { code?: string }).code ?? 'unparseable');
  }
  if (!Array.isArray(parsed) || !parsed.every((e) => typeof e === 'object' && e !== null && typeof (e as { issuer?: unknown }).issuer === 'string')) {
    throw new ConfigError(file, '', 'a YAML list of externalIssuers entries, each with an issuer', 'another shape');
  }
  return parsed as Record<string, unknown>[];
}

function keepInstructions(idpUrl: string, gatewayPort: number): string {
  return `
The mesh is up. Get a user token from the dev IdP and call the gateway:

  TOKEN=$(curl -s -d sub=alice -d 'scope=${DEMO_USER.scope}' -d acr=${DEMO_USER.acr} ${idpUrl}/dev/token | sed 's/.*"access_token":"\\([^"]*\\)".*/\\1/')
  curl -s -X POST -H "Authorization: Bearer $TOKEN" http://127.0.0.1:${gatewayPort}/checkout
  curl -s -X POST -H "Authorization: Bearer $TOKEN" http://127.0.0.1:${gatewayPort}/direct-charge

With --issuers, send a token from your own identity provider the same way:
every hop's subject, subject type and issuer are in the answer.

Ctrl-C stops the mesh.
`;
}

async function runApp(args: readonly string[], context: CliContext): Promise<number> {
  const { values } = parseArgs({
    args: [...args],
    options: { name: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' }, outbound: { type: 'string' } },
    strict: true,
  });
  const name = values.name as DemoServiceName | undefined;
  if (name !== 'gateway' && name !== 'orders' && name !== 'payments') throw new UsageError('--name must be gateway, orders or payments');
  if (values.outbound === undefined) throw new UsageError('--outbound URL (the sidecar\'s outbound port) is required');
  const app = await startDemoApp({ name, port: Number(values.port ?? 8080), host: values.host ?? '127.0.0.1', outbound: values.outbound });
  context.stdout.write(JSON.stringify({ msg: 'demo app listening', service: name, port: app.port }) + '\n');
  await untilSignal();
  await app.close();
  return 0;
}

async function runIdp(args: readonly string[], context: CliContext): Promise<number> {
  const { values } = parseArgs({ args: [...args], options: { port: { type: 'string' }, host: { type: 'string' }, issuer: { type: 'string' } }, strict: true });
  const idp = await startDevIdentityProvider({ port: Number(values.port ?? 9000), host: values.host ?? '127.0.0.1', issuer: values.issuer });
  context.stdout.write(JSON.stringify({ msg: 'dev idp listening', issuer: idp.issuer, warning: 'development identity provider: issues tokens to anyone' }) + '\n');
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
