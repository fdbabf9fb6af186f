/**
 * One `baton authz`: the decision core (./check.ts) behind its two front
 * ends (./grpc.ts, ./http.ts), the admin port, and the collaborators the
 * sidecar builds from the same config blocks (src/sidecar/wiring.ts: policy
 * source, key sets and verifier, verified-token cache, sealed context
 * handles, exchanger), and the shutdown that drains them.
 *
 * In authorizer mode the proxy terminates the connections, mTLS included;
 * baton decides and mints, the proxy moves bytes (DESIGN.md, "Third
 * round"). In mtls mode this process still holds the workload's
 * certificate: it is what it presents to the STS, and so what every token
 * it obtains for the workload is bound to (docs/security.md).
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createHttp1Server, type Http1Server } from '../dataplane/server.ts';
import { createAdminHandler } from '../sidecar/admin.ts';
import type { Collaborators } from '../sidecar/collaborators.ts';
import { createRequestIds } from '../sidecar/context-handles.ts';
import { createSidecarMetrics } from '../sidecar/metrics.ts';
import { createInflight, refusalAnswer } from '../sidecar/pipeline.ts';
import type { SidecarDeps } from '../sidecar/sidecar.ts';
import { createCollaborators, startSidecarMesh } from '../sidecar/wiring.ts';
import { listenOn } from '../sidecar/listeners.ts';
import { createReadiness } from '../sidecar/readiness.ts';
import { renderFamily } from '../telemetry/prometheus-text.ts';
import { createRuntimeMetrics } from '../telemetry/runtime-metrics.ts';
import { createSubjectPseudonym } from '../telemetry/subject-pseudonym.ts';
import { TRACING_OFF } from '../telemetry/tracing.ts';
import { createAuthorizer } from './check.ts';
import type { AuthzConfig } from './config.ts';
import { createDecisionCache } from './decision-cache.ts';
import { createGrpcFrontEnd, type GrpcFrontEnd } from './grpc.ts';
import { createHttpFrontEnd } from './http.ts';

/** What the authorizer is built with: the sidecar's own (a logger, a clock, test stand-ins, tracing, where to announce). */
export type AuthzDeps = SidecarDeps;

export interface AuthzPorts {
  /** Undefined when the front end is disabled. */
  readonly grpc: number | undefined;
  readonly http: number | undefined;
  readonly admin: number;
}

export interface Authz {
  start(): Promise<AuthzPorts>;
  ready(): boolean;
  /** Not ready at once; stops taking checks, lets those in flight finish within `graceMs`, then closes everything. */
  close(graceMs?: number): Promise<void>;
}

export function createAuthz(config: AuthzConfig, deps: AuthzDeps): Authz {
  const { logger } = deps;
  const now = deps.now ?? Date.now;
  const tracing = deps.tracing ?? TRACING_OFF;
  const metrics = createSidecarMetrics();
  const inflight = createInflight(config.maxConcurrent, metrics.inflight('inbound'), {
    peer: 1,
    subject: config.subjectShare,
  });
  const decisions = createDecisionCache({
    maxEntries: config.cache.decisionMaxEntries,
    ttlSeconds: config.cache.decisionTtlSeconds,
    now,
  });
  const mesh = startSidecarMesh(config, `authz ${config.service}`, { logger, now });
  let collaborators: Collaborators | undefined;
  let closing = false;
  let grpcFrontEnd: GrpcFrontEnd | undefined;
  let httpServer: Http1Server | undefined;
  let adminServer: Server | undefined;
  const readiness = createReadiness({
    part: 'authz',
    service: config.service,
    logger,
    mesh,
    collaborators: () => collaborators,
    closing: () => closing,
    announce: deps.announce,
    policyVersion: (version) => metrics.policyVersion(version),
  });

  return {
    ready: readiness.refresh,
    async start() {
      collaborators =
        deps.collaborators ?? (await createCollaborators(config, { logger, now, mesh, metrics, tracing }));
      const c = collaborators;
      readiness.start();

      const authorizer = createAuthorizer({
        service: config.service,
        readiness: readiness.state,
        policy: c.policy,
        verifier: c.verifier,
        verifiedCache: c.verifiedCache,
        handles: c.handles,
        requestIds: createRequestIds(),
        metrics,
        tracing,
        logger,
        maxTokenBytes: config.limits.maxTokenBytes,
        subjectPseudonym: createSubjectPseudonym(config.telemetry),
        exchanger: () => c.exchanger(),
        mesh: mesh === undefined ? undefined : { client: mesh.client, map: mesh.map },
        decisions,
        inflight,
        stsIssuer: config.sts.issuer,
        forwardToken: config.inbound.forwardToken,
        peerCertificate: config.inbound.peerCertificate,
        cacheMaxAgeSeconds: config.http.cacheMaxAgeSeconds,
        exchangeMarginSeconds: config.exchange.expiryMarginSeconds,
        domainSuffixes: config.outbound.domainSuffixes,
        homeNamespace: config.spiffe.namespace,
        now,
      });

      let grpcPort: number | undefined;
      if (config.grpc.enabled) {
        grpcFrontEnd = createGrpcFrontEnd(authorizer, { maxMessageBytes: config.grpc.maxMessageBytes });
        grpcPort = await grpcFrontEnd.listen(config.host, config.grpc.port);
      }
      let httpPort: number | undefined;
      if (config.http.enabled) {
        const { limits } = config;
        httpServer = createHttp1Server(createHttpFrontEnd(authorizer, { pathPrefix: config.http.pathPrefix }), {
          maxHeadBytes: limits.maxHeaderBytes,
          keepAliveTimeoutMs: limits.keepAliveTimeoutMs,
          headersTimeoutMs: limits.headTimeoutMs,
          handshakeTimeoutMs: limits.headTimeoutMs,
          maxConnections: limits.maxConnections,
          // The port's only peers are the proxies of this pod: the per-peer cap is the port's cap.
          maxConnectionsPerPeer: limits.maxConnections,
          refusal: refusalAnswer,
          onCapped: (cap) => metrics.connectionCapped(cap),
        });
        if (config.http.socket === undefined)
          httpPort = await listenOn(httpServer.server, config.http.port, config.host);
        else await listenOnSocket(httpServer.server, config.http.socket);
      }
      const admin = createAdminHandler({
        ready: readiness.refresh,
        waitingFor: readiness.waitingFor,
        problems: readiness.problems,
        metrics: { ...metrics, render: () => metrics.render() + decisionCacheSeries() },
        runtime: createRuntimeMetrics('authz', config.service),
        ...(mesh === undefined ? {} : { identity: () => mesh.identity.status() }),
      });
      adminServer = createServer({ maxHeaderSize: 8192 }, admin);
      const adminPort = await listenOn(adminServer, config.admin.port, config.admin.host);
      return { grpc: grpcPort, http: httpPort, admin: adminPort };
    },
    async close(graceMs = config.shutdown.graceMs) {
      if (closing) return;
      closing = true;
      readiness.stop();
      const started = Date.now();
      httpServer?.drain();
      const stopped = [
        grpcFrontEnd?.close(graceMs),
        httpServer === undefined
          ? undefined
          : new Promise<void>((resolve) => httpServer?.server.close(() => resolve())),
      ];
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([inflight.idle(), new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
      if (inflight.count() > 0)
        logger.warn(
          { event: 'shutdown', inflight: inflight.count(), graceMs, waitedMs: Date.now() - started },
          'grace period over, cutting checks still in flight',
        );
      httpServer?.closeAll();
      await Promise.all(stopped);
      await collaborators?.close();
      await mesh?.client.close();
      mesh?.identity.close();
      const admin = adminServer;
      if (admin !== undefined) {
        admin.closeAllConnections();
        await new Promise<void>((resolve) => admin.close(() => resolve()));
      }
    },
  };

  /** The decision cache's lookups, beside the sidecar's series. */
  function decisionCacheSeries(): string {
    const lines: string[] = [];
    renderFamily(
      lines,
      'baton_authz_decision_cache_total',
      'counter',
      'Decision cache lookups of baton authz, by result (hit: the decision was replayed, still audited).',
      [
        { labels: '{result="hit"}', value: decisions.counts.hit },
        { labels: '{result="miss"}', value: decisions.counts.miss },
      ],
    );
    renderFamily(lines, 'baton_authz_decision_cache_entries', 'gauge', 'Decisions baton authz holds.', [
      { labels: '', value: decisions.size },
    ]);
    return lines.join('\n') + '\n';
  }
}

/**
 * A Unix domain socket for the HTTP check: a stale one left by a previous
 * process is removed (only a socket, never another file). Readable and
 * writable by anyone who can reach its directory, which is the boundary:
 * the proxy's worker runs as another user than baton.
 */
async function listenOnSocket(server: Http1Server['server'], path: string): Promise<void> {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // none there
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(path, 0o666);
}
