import { parseArgs } from 'node:util';
import { describeKeys, formatKeys } from '../config/describe.ts';
import { loadConfig } from '../config/load.ts';
import { checkInjectorConfig, InjectorConfigSchema } from '../injector/config.ts';
import { createInjectorServer } from '../injector/server.ts';
import { createLogger } from '../telemetry/logger.ts';
import type { Command } from './command.ts';
import { partVariables } from './part-variables.ts';

const HELP = `Usage: baton injector --tls-cert FILE --tls-key FILE [--port N] [--config FILE]

Runs the Kubernetes mutating admission webhook that adds the baton sidecar
(as a native sidecar) to pods whose namespace carries the label
baton.dev/inject=enabled and which are annotated baton.dev/inject: "true".
Serves POST /mutate (AdmissionReview v1), /livez and /readyz over HTTPS.
The certificate files are reloaded when they change (cert-manager rotation).

Options:
  --tls-cert FILE   PEM certificate chain (tls.crt)
  --tls-key FILE    PEM private key (tls.key)
  --port N          listen port (default 8443)
  --config FILE     YAML config: sidecar image, ports, STS and policy URLs
                    (see docs/kubernetes.md)

Configuration keys (each also settable from its BATON_* variable, e.g.
BATON_SIDECAR__IMAGE):
${formatKeys(describeKeys(InjectorConfigSchema))}`;

export const injectorCommand: Command = {
  summary: 'run the Kubernetes admission webhook that injects the sidecar',
  help: HELP,
  async run(args, context) {
    const { values } = parseArgs({
      args: [...args],
      options: {
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        port: { type: 'string' },
        config: { type: 'string' },
      },
      strict: true,
    });
    const config = loadConfig(InjectorConfigSchema, {
      file: values.config,
      env: context.env,
      otherParts: partVariables(),
      overrides: {
        'tls.cert': values['tls-cert'],
        'tls.key': values['tls-key'],
        port: values.port === undefined ? undefined : Number(values.port),
      },
    });
    checkInjectorConfig(config, values.config ?? '(environment)');
    const logger = createLogger({ name: 'baton-injector', level: config.logLevel });
    if (config.sidecar.transport.mode === 'plaintext') {
      logger.warn(
        { event: 'transport_plaintext' },
        'PLAINTEXT: injected sidecars talk without TLS and authenticate with client secrets; only behind a mesh that already does mTLS',
      );
    }
    const server = createInjectorServer(config, { logger });
    const url = await server.start();
    logger.info({ url, image: config.sidecar.image }, 'injector listening');
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    logger.info('injector shutting down');
    await server.close();
    return 0;
  },
};
