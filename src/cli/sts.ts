import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Dispatcher } from 'undici';
import { describeKeys, formatKeys } from '../config/describe.ts';
import { createMeshClient, type MeshClient } from '../identity/mesh-client.ts';
import { parseSpiffeId } from '../identity/spiffe-id.ts';
import { startMeshIdentity } from '../identity/transport.ts';
import { policySourceFor } from '../policy/distribution/client.ts';
import type { PolicySource } from '../policy/distribution/source.ts';
import { loadStsConfig, type StsConfig, StsConfigSchema } from '../sts/config.ts';
import { createKeyStore } from '../sts/key-store.ts';
import { createMemoryReplayStore, createRedisReplayStore, type ReplayStore } from '../sts/replay-store.ts';
import { loadRedis } from '../redis/client.ts';
import { hashSecret } from '../sts/secret-hash.ts';
import { createStsServer } from '../sts/server.ts';
import type { Logger } from 'pino';
import { createAdminListener } from '../telemetry/admin-listener.ts';
import { createLogger } from '../telemetry/logger.ts';
import { startTelemetry } from '../telemetry/tracing.ts';
import { type CliContext, type Command, UsageError } from './command.ts';
import { partVariables } from './part-variables.ts';

const HELP = `Usage: baton sts --config FILE [--port N] [--host ADDR] [--log-level LEVEL]
       baton sts hash-secret < secret.txt

Runs the mesh token service: an RFC 8693 token exchange and client
credentials authorization server that mints RFC 9068 access tokens with
nested act chains, checked against the call-graph policy. See docs/sts.md.

Options:
  --config FILE      YAML config (issuer, clients, policy, keys, externalIssuers, ...)
  --port N           listen port (overrides port)
  --host ADDR        listen address (overrides host; default 127.0.0.1)
  --log-level LEVEL  fatal, error, warn, info, debug, trace or silent

hash-secret reads a client secret from standard input (never from the
command line, where other users could see it) and prints the secretHash
value for the clients list.

Configuration keys (each also settable from its BATON_* variable, e.g.
BATON_TOKEN_TTL_SECONDS=600):
${formatKeys(describeKeys(StsConfigSchema))}`;

const HASH_SECRET_HELP = `Usage: baton sts hash-secret < secret.txt
       printf '%s' "$SECRET" | baton sts hash-secret

Reads one client secret (at least 16 characters) from standard input and
prints its secretHash for the STS clients list, so the STS config holds no
clear secret. The secret is never taken from the command line, where other
users could read it in the process list. A trailing newline is dropped.`;

export const stsCommand: Command = {
  summary: 'run the mesh token service (RFC 8693 token exchange)',
  help: HELP,
  subcommands: ['hash-secret'],
  helpFor: async (name) => (name === 'hash-secret' ? HASH_SECRET_HELP : HELP),
  async run(args: readonly string[], context: CliContext): Promise<number> {
    if (args[0] === 'hash-secret') {
      if (args.length > 1 && (args.includes('--help') || args.includes('-h'))) {
        context.stdout.write(HASH_SECRET_HELP + '\n');
        return 0;
      }
      if (args.length > 1)
        throw new UsageError(
          `hash-secret takes no arguments (the secret comes on standard input), got '${String(args[1]).slice(0, 64)}'`,
        );
      return await hashSecretCommand(context);
    }
    const { values } = parseArgs({
      args: [...args],
      options: {
        config: { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        'log-level': { type: 'string' },
      },
      allowPositionals: false,
      strict: true,
    });
    if (values.config === undefined && context.env.BATON_ISSUER === undefined)
      throw new UsageError('sts expects --config FILE');
    const config = loadStsConfig({
      file: values.config,
      env: context.env,
      otherParts: partVariables(),
      overrides: {
        port: values.port === undefined ? undefined : portNumber(values.port),
        host: values.host,
        logLevel: values['log-level'],
      },
    });
    return await serve(config, context);
  },
};

async function serve(config: StsConfig, context: CliContext): Promise<number> {
  const logger = createLogger({ name: 'baton-sts', level: config.logLevel });
  const telemetry = await startTelemetry({ serviceName: 'baton-sts', env: context.env });
  const mesh = startMeshIdentity(config, 'the STS', { logger });
  // mtls: the policy server is reached over TLS and must present baton-policy-server's SPIFFE ID.
  let meshClient: MeshClient | undefined;
  if (mesh !== undefined && config.policy.url !== undefined) {
    meshClient = createMeshClient({ identity: mesh.identity, logger });
    meshClient.expect(
      config.policy.url,
      config.policy.spiffeId === undefined
        ? mesh.map.idOf('baton-policy-server')
        : parseSpiffeId(config.policy.spiffeId).id,
    );
  }
  const policy = policySource(config, logger, meshClient?.dispatcher);
  const keys = await createKeyStore({
    dir: config.keys?.dir,
    alg: config.signingAlg,
    retireAfterSeconds: config.tokenTtlSeconds + config.clockToleranceSeconds,
    rotateEverySeconds: config.keys?.rotateEverySeconds,
    prepublishSeconds: config.keys?.prepublishSeconds,
    logger,
  });
  const replay: ReplayStore =
    config.redis === undefined
      ? createMemoryReplayStore()
      : createRedisReplayStore({
          Redis: await loadRedis(),
          url: config.redis.url,
          credentials: { username: config.redis.username, passwordFile: config.redis.passwordFile },
          commandTimeoutMs: config.redis.commandTimeoutMs,
          logger,
        });
  const server = createStsServer(config, { logger, policy, keys, replay, mesh, tracing: telemetry.tracing });
  // A plaintext port for Prometheus and probes beside the TLS one (src/telemetry/admin-listener.ts).
  const admin = config.admin.port === undefined ? undefined : createAdminListener(server.app);
  let stopped!: () => void;
  const stop = new Promise<void>((resolve) => (stopped = resolve));
  const onSignal = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, 'sts stopping: readiness off, finishing in-flight requests');
    server.drain();
    stopped();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  try {
    policy
      .start()
      .catch((error: unknown) =>
        logger.error({ err: { message: (error as Error).message } }, 'policy source failed to start'),
      );
    if (!(await policy.waitUntilReady(config.policy.readyTimeoutMs))) {
      logger.warn(
        { timeoutMs: config.policy.readyTimeoutMs },
        'no call-graph policy yet: not ready, token requests answer temporarily_unavailable until one arrives',
      );
    }
    const url = await server.listen();
    const adminUrl = await admin?.listen({ host: config.host, port: config.admin.port as number });
    logger.info(
      {
        url,
        adminUrl,
        issuer: config.issuer,
        kid: keys.active().kid,
        alg: keys.active().alg,
        policy: policy.current()?.digest,
        clients: config.clients.length,
        externalIssuers: config.externalIssuers.length,
      },
      'sts listening',
    );
    await stop;
    return 0;
  } catch (error) {
    context.stderr.write(`baton: sts failed: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    await admin?.close();
    await server.close();
    await policy.close();
    await replay.close();
    keys.close();
    await meshClient?.close();
    mesh?.identity.close();
    // DESIGN "SIGTERM": spans flush before exit.
    await telemetry.shutdown();
    logger.flush();
  }
}

function policySource(config: StsConfig, logger: Logger, dispatcher: Dispatcher | undefined): PolicySource {
  const { policy } = config;
  const settings = policy.file === undefined ? policy : { ...policy, file: resolve(policy.file) };
  return policySourceFor(settings, policy.publicKey, { logger, dispatcher });
}

async function hashSecretCommand(context: CliContext): Promise<number> {
  // At a terminal, say what is awaited instead of seeming to hang.
  if (process.stdin.isTTY)
    context.stderr.write(
      'baton sts hash-secret: type the client secret, then Enter and Ctrl-D (it is not echoed anywhere else)\n',
    );
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const secret = Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
  if (secret.length < 16)
    throw new UsageError('hash-secret expects a secret of at least 16 characters on standard input');
  context.stdout.write(`${await hashSecret(secret)}\n`);
  return 0;
}

function portNumber(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new UsageError(`expected --port between 0 and 65535, got '${text}'`);
  return port;
}
