/**
 * What each part (sidecar, STS, policy server) does with `transport`,
 * `identity` and `spiffe` at start: in `mtls` mode, load the workload
 * identity and the SPIFFE ID rule; in `plaintext` mode, say loudly, once,
 * that mesh hops are neither encrypted nor authenticated.
 */
import type { Logger } from 'pino';
import type { SpiffeMappingConfig, TransportConfig, WorkloadIdentityConfig } from './config.ts';
import { createServiceMap, type ServiceMap } from './service-map.ts';
import { createWorkloadIdentity, type WorkloadIdentity } from './workload-identity.ts';

export interface PartTransportConfig {
  readonly transport: TransportConfig;
  readonly identity: WorkloadIdentityConfig;
  readonly spiffe: SpiffeMappingConfig;
}

export interface MeshIdentity {
  readonly identity: WorkloadIdentity;
  readonly map: ServiceMap;
}

/** The loud line of plaintext mode: one warning, at start, naming what is given up. */
export function warnPlaintext(logger: Logger, part: string): void {
  logger.warn(
    { event: 'transport_plaintext', part },
    `PLAINTEXT MODE: ${part} runs WITHOUT mutual TLS. Mesh hops are neither encrypted nor authenticated, and tokens are not bound to certificates. Use only on loopback or behind a mesh that already does mTLS (transport.mode: mtls is the default).`,
  );
}

/** In mtls mode the identity and the ID rule; in plaintext mode undefined, after the warning. */
export function startMeshIdentity(
  config: PartTransportConfig,
  part: string,
  deps: { logger: Logger; now?: () => number },
): MeshIdentity | undefined {
  if (config.transport.mode === 'plaintext') {
    warnPlaintext(deps.logger, part);
    return undefined;
  }
  const map = createServiceMap(config.spiffe);
  const identity = createWorkloadIdentity({ ...config.identity, logger: deps.logger, now: deps.now ?? Date.now });
  return { identity, map };
}
