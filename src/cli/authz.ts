import { parseArgs } from 'node:util';
import { describeKeys, formatKeys } from '../config/describe.ts';
import { AuthzConfigSchema, loadAuthzConfig } from '../authz/config.ts';
import { createAuthz } from '../authz/authz.ts';
import { createLogger } from '../telemetry/logger.ts';
import { startTelemetry } from '../telemetry/tracing.ts';
import type { Command } from './command.ts';
import { portFlag, serveUntilSignal } from './serve.ts';

// Flag → config key; the help text and the defaults it shows come from the schema.
const FLAGS: ReadonlyArray<readonly [flag: string, key: string]> = [
  ['--service NAME', 'service'],
  ['--grpc-port N', 'grpc.port'],
  ['--http-port N', 'http.port'],
  ['--admin-port N', 'admin.port'],
];

function help(): string {
  const keys = describeKeys(AuthzConfigSchema);
  const flagLines = FLAGS.map(([flag, key]) => {
    const described = keys.find((k) => k.key === key);
    const value =
      described === undefined || described.default === undefined ? '' : ` (default ${String(described.default)})`;
    return `  ${flag.padEnd(20)}sets ${key}${value}`;
  });
  return `Usage: baton authz --config FILE [--service NAME] [--grpc-port N] [--http-port N] [--admin-port N]

Runs baton as the authorizer of a proxy you already run, next to one
service: Envoy and Istio ask it over the gRPC external authorization API
(envoy.service.auth.v3.Authorization/Check) or Envoy's HTTP ext_authz
service, nginx over auth_request. Inbound it verifies the token, checks the
call chain and answers with the identity headers and the baton-context
handle for the app; outbound it opens the handle, checks the edge,
exchanges a token for the target at the STS and answers with it. The proxy
moves the bytes. The admin port serves /livez, /readyz and /metrics.
See docs/authz.md, docs/istio.md and docs/nginx.md.

Options:
  --config FILE       YAML config with the keys below
${flagLines.join('\n')}

A flag wins over the environment, which wins over the file.
The check ports listen on host (127.0.0.1 by default): whoever reaches them
can name any peer and receive tokens for this service, so only the proxy in
the same pod may. A proxy that cannot reach baton, or waits too long, must
deny (Envoy failure_mode_allow: false; nginx answers 500).
SIGTERM: /readyz turns 503, checks in flight finish within shutdown.graceMs,
then the process exits 0.

Configuration keys (each also settable from its BATON_* variable):
${formatKeys(keys)}`;
}

export const authzCommand: Command = {
  summary: 'decide for a proxy you already run: Envoy/Istio ext_authz (gRPC, HTTP) and nginx auth_request',
  get help() {
    return help();
  },
  async run(args, context) {
    const { values } = parseArgs({
      args: [...args],
      options: {
        config: { type: 'string' },
        service: { type: 'string' },
        'grpc-port': { type: 'string' },
        'http-port': { type: 'string' },
        'admin-port': { type: 'string' },
      },
      strict: true,
    });
    const config = loadAuthzConfig({
      file: values.config,
      env: context.env,
      overrides: {
        service: values.service,
        'grpc.port': portFlag(values['grpc-port']),
        'http.port': portFlag(values['http-port']),
        'admin.port': portFlag(values['admin-port']),
      },
    });
    const telemetry = await startTelemetry({ serviceName: config.service, env: context.env });
    const logger = createLogger({ name: config.service, level: config.logLevel, traceIds: telemetry.tracing.enabled });
    const authz = createAuthz(config, {
      logger,
      tracing: telemetry.tracing,
      announce: (line) => context.stderr.write(`${line}\n`),
    });
    return await serveUntilSignal(authz, {
      name: 'authz',
      host: config.host,
      graceMs: config.shutdown.graceMs,
      logger,
      telemetry,
    });
  },
};
