import { Writable } from 'node:stream';
import { createFilePolicySource } from '../../src/policy/distribution/source.ts';
import type { MeshIdentity } from '../../src/identity/transport.ts';
import type { StsConfig } from '../../src/sts/config.ts';
import { createKeyStore, type KeyStore } from '../../src/sts/key-store.ts';
import { createStsServer, type StsServer } from '../../src/sts/server.ts';
import { createLogger } from '../../src/telemetry/logger.ts';

export interface InProcessSts {
  readonly server: StsServer;
  readonly keys: KeyStore;
  /** Every log line written, for checking that no token leaks. */
  readonly logs: string[];
  token(
    form: Record<string, string | string[]>,
    headers?: Record<string, string>,
  ): Promise<{ status: number; headers: Record<string, unknown>; body: Record<string, unknown> }>;
  close(): Promise<void>;
}

/** The STS app in this process, driven with fastify's `inject` (no socket), or listening (`server.listen()`, with `mesh` on TLS). */
export async function startInProcessSts(
  config: StsConfig,
  options: { now?: () => number; mesh?: MeshIdentity } = {},
): Promise<InProcessSts> {
  const logs: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs.push(chunk.toString('utf8'));
      done();
    },
  });
  const logger = createLogger({ name: 'sts-test', level: 'debug', destination });
  const policy = createFilePolicySource(config.policy.file as string, { logger, watch: false });
  await policy.start();
  const keys = await createKeyStore({
    alg: config.signingAlg,
    retireAfterSeconds: config.tokenTtlSeconds + config.clockToleranceSeconds,
    logger,
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  const server = createStsServer(config, {
    logger,
    policy,
    keys,
    ...(options.now === undefined ? {} : { now: options.now }),
    ...(options.mesh === undefined ? {} : { mesh: options.mesh }),
  });
  return {
    server,
    keys,
    logs,
    async token(form, headers = {}) {
      const body = new URLSearchParams();
      for (const [name, value] of Object.entries(form))
        for (const v of Array.isArray(value) ? value : [value]) body.append(name, v);
      const response = await server.app.inject({
        method: 'POST',
        url: '/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
        payload: body.toString(),
      });
      return {
        status: response.statusCode,
        headers: response.headers,
        body: response.json() as Record<string, unknown>,
      };
    },
    async close() {
      await server.close();
      await policy.close();
      keys.close();
    },
  };
}
