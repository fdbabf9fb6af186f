import { accessSync, constants, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError } from '../config/config-error.ts';
import { describeKeys, formatKeys } from '../config/describe.ts';
import { loadConfig } from '../config/load.ts';
import { startMeshIdentity } from '../identity/transport.ts';
import { type PolicyServerConfig, PolicyServerConfigSchema } from '../policy/distribution/config.ts';
import { createVersionCounter } from '../policy/distribution/publisher.ts';
import { createPolicyServer } from '../policy/distribution/server.ts';
import {
  generatePolicySigningKey,
  importPolicySigningKey,
  POLICY_ALGORITHMS,
  type PolicyAlgorithm,
  type PolicySigningKey,
} from '../policy/distribution/signing.ts';
import { createPolicyWatcher } from '../policy/distribution/watch.ts';
import { createAdminListener } from '../telemetry/admin-listener.ts';
import { createLogger } from '../telemetry/logger.ts';
import { startTelemetry } from '../telemetry/tracing.ts';
import { type CliContext, type Command, UsageError } from './command.ts';
import { KeyFileExistsError } from './errors.ts';
import { partVariables } from './part-variables.ts';

const HELP = `Usage: baton policy-server --policy FILE|DIR --signing-key KEY.pem [options]
       baton policy-server keygen --out DIR [--alg ES256|EdDSA]

Serves the call-graph policy, signed (JWS, typ baton-callgraph+jwt) and
versioned, at GET /v1/callgraph, with ETag/If-None-Match and long polling
(?wait=SECONDS). Watches the policy path and publishes each valid change;
a bad edit is logged and the last good version keeps being served.

Options:
  --policy FILE|DIR    the policy file, or a directory holding one
  --signing-key FILE   PKCS#8 PEM private key, P-256 (ES256) or Ed25519 (EdDSA)
  --host ADDRESS       listen address (default 127.0.0.1)
  --port N             listen port (default 7100; 0 picks a free one)
  --state FILE         persist the version counter here (versions survive restarts)
  --transport MODE     mtls (default: TLS with the workload certificate in
                       identity.*, docs/identity.md) or plaintext (loopback only)
  --config FILE        YAML config with the keys below

keygen writes policy-signing.key.pem (mode 0600) and policy-signing.pub.pem
into DIR; give the public key to sidecars and the STS as policy.publicKey.
Run 'baton policy-server keygen --help' for its options.

Configuration keys (each also settable from its BATON_* variable):
${formatKeys(describeKeys(PolicyServerConfigSchema))}`;

const KEYGEN_HELP = `Usage: baton policy-server keygen --out DIR [--alg ES256|EdDSA]

Writes a new policy signing key pair into DIR (created if missing):
  policy-signing.key.pem   PKCS#8 private key, mode 0600: give it to the
                           policy server as --signing-key, keep it secret
  policy-signing.pub.pem   SPKI public key: give it to sidecars and the STS
                           as policy.publicKey

Options:
  --out DIR    where to write the two files
  --alg ALG    ES256 (P-256, the default) or EdDSA (Ed25519)

Refuses to overwrite either file: a key someone signs with is replaced by
rotating it (docs/policy-server.md), not by writing over it.`;

export const policyServerCommand: Command = {
  summary: 'serve the call-graph policy, signed and versioned',
  help: HELP,
  subcommands: ['keygen'],
  helpFor: async (name) => (name === 'keygen' ? KEYGEN_HELP : HELP),
  async run(args: readonly string[], context: CliContext): Promise<number> {
    if (args[0] === 'keygen') return keygen(args.slice(1), context);
    const { values } = parseArgs({
      args: [...args],
      options: {
        policy: { type: 'string' },
        'signing-key': { type: 'string' },
        host: { type: 'string' },
        port: { type: 'string' },
        state: { type: 'string' },
        config: { type: 'string' },
        'log-level': { type: 'string' },
        transport: { type: 'string' },
      },
      allowPositionals: false,
      strict: true,
    });
    const config = loadConfig(PolicyServerConfigSchema, {
      file: values.config,
      env: context.env,
      otherParts: partVariables(),
      overrides: {
        policy: values.policy,
        signingKey: values['signing-key'],
        host: values.host,
        port: values.port === undefined ? undefined : portNumber(values.port),
        state: values.state,
        logLevel: values['log-level'],
        'transport.mode': values.transport,
      },
    });
    return await serve(config, context);
  },
};

async function serve(config: PolicyServerConfig, context: CliContext): Promise<number> {
  const logger = createLogger({ name: 'policy-server', level: config.logLevel });
  const telemetry = await startTelemetry({ serviceName: 'baton-policy-server', env: context.env });
  const signingKey = readSigningKey(config.signingKey);
  if (config.state !== undefined) prepareStateFolder(config.state);
  const watcher = createPolicyWatcher(config.policy, { logger, pollIntervalMs: config.pollIntervalMs });
  const mesh = startMeshIdentity(config, 'the policy server', { logger });
  const server = createPolicyServer({
    watcher,
    signingKey,
    versions: createVersionCounter({ stateFile: config.state, now: Date.now }),
    logger,
    maxWaitSeconds: config.maxWaitSeconds,
    mesh,
    reissueSeconds: config.reissueSeconds,
  });
  let stopped!: () => void;
  const stop = new Promise<void>((resolve) => (stopped = resolve));
  const onSignal = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, 'policy server stopping');
    stopped();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  // A plaintext port for Prometheus and probes beside the TLS one (src/telemetry/admin-listener.ts).
  const admin = config.admin.port === undefined ? undefined : createAdminListener(server.app);
  try {
    const url = await server.listen({ host: config.host, port: config.port });
    const adminUrl = await admin?.listen({ host: config.host, port: config.admin.port as number });
    logger.info(
      {
        url,
        adminUrl,
        alg: signingKey.alg,
        kid: signingKey.kid,
        policy: resolve(config.policy),
        policyLoaded: watcher.current() !== undefined,
      },
      'policy server listening',
    );
    await stop;
    return 0;
  } catch (error) {
    context.stderr.write(`baton: policy server failed: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    watcher.close();
    await admin?.close();
    await server.close();
    mesh?.identity.close();
    // DESIGN "SIGTERM": spans flush before exit.
    await telemetry.shutdown();
    logger.flush();
  }
}

/**
 * The state file's folder is created if missing. One that cannot be created
 * or written is a configuration error (exit 78) found now: found at the first
 * publish instead, it would leave the server listening and unready for good.
 */
function prepareStateFolder(path: string): void {
  const folder = dirname(resolve(path));
  try {
    mkdirSync(folder, { recursive: true });
    accessSync(folder, constants.W_OK);
  } catch (error) {
    throw new ConfigError(
      resolve(path),
      'state',
      'a file in a folder that this process can create and write',
      `${folder}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
}

function readSigningKey(path: string): PolicySigningKey {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(
      resolve(path),
      'signingKey',
      'a readable PKCS#8 PEM private key file',
      (error as NodeJS.ErrnoException).code ?? 'an unreadable file',
    );
  }
  try {
    return importPolicySigningKey(pem);
  } catch (error) {
    // The message names the key type only; the key material never reaches the terminal.
    throw new ConfigError(
      resolve(path),
      'signingKey',
      'a P-256 (ES256) or Ed25519 (EdDSA) PKCS#8 PEM private key',
      error instanceof Error ? error.message.replace(/^expected .*?, got /, '') : undefined,
    );
  }
}

function keygen(args: readonly string[], context: CliContext): number {
  if (args.includes('--help') || args.includes('-h')) {
    context.stdout.write(KEYGEN_HELP + '\n');
    return 0;
  }
  const { values } = parseArgs({
    args: [...args],
    options: { out: { type: 'string' }, alg: { type: 'string', default: 'ES256' } },
    strict: true,
    allowPositionals: false,
  });
  if (values.out === undefined) throw new UsageError('keygen expects --out DIR');
  if (!(POLICY_ALGORITHMS as readonly string[]).includes(values.alg))
    throw new UsageError(`expected --alg ${POLICY_ALGORITHMS.join(' or ')}, got '${values.alg}'`);
  const privatePath = join(values.out, 'policy-signing.key.pem');
  const publicPath = join(values.out, 'policy-signing.pub.pem');
  // Both checked before either is written, so a refusal never leaves a half-written pair.
  const existing = [privatePath, publicPath].filter((path) => existsSync(path));
  if (existing.length > 0) {
    throw new KeyFileExistsError(
      `refusing to overwrite ${existing.join(' and ')}: a policy server or sidecars may be using ${existing.length === 1 ? 'it' : 'them'}; choose another --out, or move ${existing.length === 1 ? 'it' : 'them'} away first`,
    );
  }
  const generated = generatePolicySigningKey(values.alg as PolicyAlgorithm);
  mkdirSync(values.out, { recursive: true });
  // wx: never overwrite a key someone is already signing with.
  writeFileSync(privatePath, generated.privateKeyPem, { mode: 0o600, flag: 'wx' });
  writeFileSync(publicPath, generated.publicKeyPem, { flag: 'wx' });
  context.stdout.write(
    `wrote ${privatePath} (${generated.alg} private key, keep secret)\nwrote ${publicPath} (give to sidecars and the STS as policy.publicKey)\n`,
  );
  return 0;
}

function portNumber(raw: string): number {
  if (!/^\d{1,5}$/.test(raw)) throw new UsageError(`expected --port to be a number from 0 to 65535, got '${raw}'`);
  return Number(raw);
}
