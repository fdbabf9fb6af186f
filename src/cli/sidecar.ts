import { parseArgs } from 'node:util';
import { describeKeys, formatKeys } from '../config/describe.ts';
import { loadSidecarConfig, SidecarConfigSchema } from '../sidecar/config.ts';
import { createSidecar } from '../sidecar/sidecar.ts';
import { createLogger } from '../telemetry/logger.ts';
import { startTelemetry } from '../telemetry/tracing.ts';
import type { Command } from './command.ts';
import { portFlag, serveUntilSignal } from './serve.ts';
import { partVariables } from './part-variables.ts';

// Flag → config key; the help text and the defaults it shows come from the schema.
const FLAGS: ReadonlyArray<readonly [flag: string, key: string]> = [
  ['--service NAME', 'service'],
  ['--inbound-port N', 'inbound.port'],
  ['--outbound-port N', 'outbound.port'],
  ['--admin-port N', 'admin.port'],
];

function help(): string {
  const keys = describeKeys(SidecarConfigSchema);
  const flagLines = FLAGS.map(([flag, key]) => {
    const described = keys.find((k) => k.key === key);
    const value =
      described === undefined || described.default === undefined ? '' : ` (default ${String(described.default)})`;
    return `  ${flag.padEnd(20)}sets ${key}${value}`;
  });
  return `Usage: baton sidecar --config FILE [--service NAME] [--inbound-port N] [--outbound-port N] [--admin-port N]

Runs the sidecar next to one service: the inbound port verifies tokens and
checks the call chain before forwarding to the app; the outbound port takes
the app's calls, exchanges a token for the target and forwards; the admin
port serves /livez, /readyz and /metrics. See docs/sidecar.md.

Options:
  --config FILE       YAML config with the keys below
${flagLines.join('\n')}

A flag wins over the environment, which wins over the file.
transport.mode is mtls by default: the inbound port speaks TLS and every
mesh hop is mutual TLS with the workload certificate (docs/identity.md);
plaintext says so loudly. SIGTERM: /readyz turns 503, in-flight requests
finish within shutdown.graceMs, then the process exits 0.

Configuration keys (each also settable from its BATON_* variable):
${formatKeys(keys)}`;
}

export const sidecarCommand: Command = {
  summary: 'run the sidecar next to one service (inbound, outbound, admin)',
  get help() {
    return help();
  },
  async run(args, context) {
    const { values } = parseArgs({
      args: [...args],
      options: {
        config: { type: 'string' },
        service: { type: 'string' },
        'inbound-port': { type: 'string' },
        'outbound-port': { type: 'string' },
        'admin-port': { type: 'string' },
      },
      strict: true,
    });
    const config = loadSidecarConfig({
      file: values.config,
      env: context.env,
      otherParts: partVariables(),
      overrides: {
        service: values.service,
        'inbound.port': portFlag(values['inbound-port']),
        'outbound.port': portFlag(values['outbound-port']),
        'admin.port': portFlag(values['admin-port']),
      },
    });
    const telemetry = await startTelemetry({ serviceName: config.service, env: context.env });
    const logger = createLogger({ name: config.service, level: config.logLevel, traceIds: telemetry.tracing.enabled });
    const sidecar = createSidecar(config, {
      logger,
      tracing: telemetry.tracing,
      announce: (line) => context.stderr.write(`${line}\n`),
    });
    return await serveUntilSignal(sidecar, {
      name: 'sidecar',
      host: config.host,
      graceMs: config.shutdown.graceMs,
      logger,
      telemetry,
    });
  },
};
