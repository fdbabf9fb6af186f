import { parseArgs } from 'node:util';
import { startDemoApp, type DemoServiceName } from '../demo/apps.ts';
import { startDevIdentityProvider } from '../demo/dev-idp.ts';
import { startMesh } from '../demo/mesh.ts';
import { DEMO_USER, formatScenarios, runScenarios } from '../demo/scenario.ts';
import { type CliContext, type Command, UsageError } from './command.ts';

const HELP = `Usage: baton demo [--keep] [--json]
       baton demo app --name gateway|orders|payments --port N --outbound URL [--host H]
       baton demo idp --port N [--host H] [--issuer URL]

Runs the whole mesh on loopback, with no Docker and no Redis: a dev identity
provider, the policy server with the example shop policy, the STS, and the
gateway, orders and payments services each behind its own sidecar. Drives
one chain the policy allows and one it refuses, and prints what each hop saw.

Options:
  --keep   keep the mesh running and print how to call it with curl (Ctrl-C stops it)
  --json   print the results as JSON

'demo app' and 'demo idp' run one demo service or the dev IdP on its own
(the docker-compose mesh uses them).`;

export const demoCommand: Command = {
  summary: 'run the whole mesh on this machine and drive an allowed and a denied chain',
  help: HELP,
  async run(args, context) {
    const [first, ...rest] = args;
    if (first === 'app') return await runApp(rest, context);
    if (first === 'idp') return await runIdp(rest, context);
    const { values } = parseArgs({ args: [...args], options: { keep: { type: 'boolean' }, json: { type: 'boolean' } }, strict: true });
    if (!values.json) context.stdout.write('baton demo: starting the mesh on 127.0.0.1 with mTLS (dev IdP, policy server, STS, 3 apps, 3 sidecars; development certificates in a temporary directory)…\n');
    const mesh = await startMesh();
    try {
      const results = await runScenarios(mesh);
      if (values.json) context.stdout.write(JSON.stringify(results, null, 2) + '\n');
      else context.stdout.write(formatScenarios(results) + '\n');
      if (values.keep) {
        context.stdout.write(keepInstructions(mesh.idpUrl, mesh.services.gateway.entry));
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

function keepInstructions(idpUrl: string, gatewayPort: number): string {
  return `
The mesh is up. Get a user token from the dev IdP and call the gateway:

  TOKEN=$(curl -s -d sub=alice -d 'scope=${DEMO_USER.scope}' -d acr=${DEMO_USER.acr} ${idpUrl}/dev/token | sed 's/.*"access_token":"\\([^"]*\\)".*/\\1/')
  curl -s -X POST -H "Authorization: Bearer $TOKEN" http://127.0.0.1:${gatewayPort}/checkout
  curl -s -X POST -H "Authorization: Bearer $TOKEN" http://127.0.0.1:${gatewayPort}/direct-charge

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
