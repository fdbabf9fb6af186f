import { closest } from '../config/closest.ts';
import { type CliContext, type Command, reportFailure, wantsHelp } from './command.ts';
import { BATON_VERSION } from '../core/version.ts';

/** Subcommands load lazily so that `baton policy check` does not pay for the STS. */
export const COMMANDS: Readonly<Record<string, { summary: string; load: () => Promise<Command> }>> = {
  policy: {
    summary: 'validate, explain, draw and diff call-graph policies',
    load: async () => (await import('./policy.ts')).policyCommand,
  },
  'policy-server': {
    summary: 'serve the call-graph policy, signed and versioned',
    load: async () => (await import('./policy-server.ts')).policyServerCommand,
  },
  sts: {
    summary: 'run the mesh token service (RFC 8693 token exchange)',
    load: async () => (await import('./sts.ts')).stsCommand,
  },
  sidecar: {
    summary: 'run the sidecar next to one service (inbound, outbound, admin)',
    load: async () => (await import('./sidecar.ts')).sidecarCommand,
  },
  authz: {
    summary: 'decide for a proxy you already run: Envoy/Istio ext_authz (gRPC, HTTP) and nginx auth_request',
    load: async () => (await import('./authz.ts')).authzCommand,
  },
  demo: {
    summary: 'run the whole mesh on this machine and drive an allowed and a denied chain',
    load: async () => (await import('./demo.ts')).demoCommand,
  },
  injector: {
    summary: 'run the Kubernetes admission webhook that injects the sidecar',
    load: async () => (await import('./injector.ts')).injectorCommand,
  },
  certs: {
    summary: 'write development workload certificates (a local CA and one SPIFFE SVID per service)',
    load: async () => (await import('./certs.ts')).certsCommand,
  },
  'redis-acl': {
    summary: 'write the Redis ACL file and per-service Redis passwords and seal keys',
    load: async () => (await import('./redis-acl.ts')).redisAclCommand,
  },
  token: {
    summary: 'check a token against an issuer profile and show the identity it carries',
    load: async () => (await import('./token.ts')).tokenCommand,
  },
  audit: {
    summary: 'reconstruct a call chain and its decisions from sidecar and STS logs',
    load: async () => (await import('./audit.ts')).auditCommand,
  },
};

const HELP = `baton — identity propagation for microservices

Usage: baton <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, { summary }]) => `  ${name.padEnd(15)}${summary}`)
  .join('\n')}

Run 'baton <command> --help' for a command's options.
Every configuration key can also be set from a BATON_* environment variable
(sts.clientId → BATON_STS__CLIENT_ID).`;

export async function main(argv: readonly string[], context: CliContext): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? context.stderr : context.stdout).write(HELP + '\n');
    return name === undefined ? 2 : 0;
  }
  if (name === '--version') {
    context.stdout.write(`baton ${BATON_VERSION}\n`);
    return 0;
  }
  const entry = COMMANDS[name];
  if (entry === undefined) {
    const near = closest(name, Object.keys(COMMANDS));
    context.stderr.write(
      `baton: unknown command '${name}'${near === undefined ? '' : `; did you mean 'baton ${near}'?`}\n\n${HELP}\n`,
    );
    return 2;
  }
  const command = await entry.load();
  // --help anywhere: the help of the subcommand named first (`baton token check --help`), else the command's; never a run.
  if (wantsHelp(rest)) {
    const named = rest.find((a) => !a.startsWith('-'));
    const help =
      named !== undefined && command.subcommands?.includes(named) === true && command.helpFor !== undefined
        ? await command.helpFor(named)
        : command.help;
    context.stdout.write(help + '\n');
    return 0;
  }
  try {
    return await command.run(rest, context);
  } catch (error) {
    return reportFailure(error, context, `Run 'baton ${name} --help' for usage.`);
  }
}
