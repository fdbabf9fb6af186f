/**
 * One sidecar: the inbound, outbound and admin servers around one set of
 * collaborators (policy source, token verifier and caches, context-handle
 * store, exchange client), and the shutdown that drains them.
 *
 * The data-plane servers are the socket data plane (src/dataplane/): a
 * strict HTTP/1.1 parser on node:net, node:tls for the inbound port in
 * mtls mode, with response bytes passed through. The admin port is plain
 * node:http: it is not on the request path.
 */
import { createServer, type Server } from 'node:http';
import type { RequestStream } from '../dataplane/stream.ts';
import { createHttp1Server, type Http1Server } from '../dataplane/server.ts';
import type { Logger } from 'pino';
import { createRuntimeMetrics } from '../telemetry/runtime-metrics.ts';
import { createSubjectPseudonym } from '../telemetry/subject-pseudonym.ts';
import { createAdminHandler } from './admin.ts';
import { type Tracing, TRACING_OFF } from '../telemetry/tracing.ts';
import type { Collaborators, SidecarContext } from './collaborators.ts';
import { createCollaborators, type SidecarMesh, startSidecarMesh } from './wiring.ts';
import type { SidecarConfig } from './config.ts';
import { createForwarder, upstreamOrigin } from './pipeline.ts';
import { createInboundHandler } from './inbound.ts';
import { createSidecarMetrics, type SidecarMetrics } from './metrics.ts';
import { createOutboundHandler } from './outbound.ts';
import { createRequestIds } from './context-handles.ts';
import { createInflight, type Inflight } from './pipeline.ts';
import { dataPlaneOptions, listenOn, mtlsInboundServer, type StreamHandler } from './listeners.ts';
import { createReadiness } from './readiness.ts';
import { peerOf } from './edge-check.ts';

export interface SidecarDeps {
  readonly logger: Logger;
  /** Epoch milliseconds. */
  readonly now?: () => number;
  /** Tests pass stand-ins; otherwise they are built from config. */
  readonly collaborators?: Collaborators;
  /** From startTelemetry (src/telemetry/tracing.ts); off when absent. */
  readonly tracing?: Tracing;
  /** Where a problem that keeps the sidecar unready is announced as one plain line (the CLI: stderr), besides the log. */
  readonly announce?: (line: string) => void;
}

export interface SidecarPorts {
  readonly inbound: number;
  readonly outbound: number;
  readonly admin: number;
  /** mtls mode, entrypoints: the plaintext inbound port behind the ingress, when configured. */
  readonly plaintextInbound?: number;
}

export interface Sidecar {
  start(): Promise<SidecarPorts>;
  ready(): boolean;
  /** Not ready at once; stops accepting, lets in-flight requests finish within `graceMs`, then closes everything. */
  close(graceMs?: number): Promise<void>;
}

export function createSidecar(config: SidecarConfig, deps: SidecarDeps): Sidecar {
  const { logger } = deps;
  const now = deps.now ?? Date.now;
  const tracing = deps.tracing ?? TRACING_OFF;
  const metrics = createSidecarMetrics();
  const { limits } = config;
  const forwarder = createForwarder({
    connectTimeoutMs: config.connectTimeoutMs,
    keepAliveTimeoutMs: limits.upstreamKeepAliveTimeoutMs,
    maxHeadBytes: limits.maxResponseHeaderBytes,
    maxIdlePerOrigin: limits.upstreamIdlePerOrigin,
    onRetry: () => metrics.upstreamRetry(),
    h2: {
      connectTimeoutMs: config.connectTimeoutMs,
      idleTimeoutMs: limits.upstreamKeepAliveTimeoutMs,
      maxHeaderListSize: limits.maxResponseHeaderBytes,
    },
  });
  const inflight = {
    inbound: createInflight(config.inbound.maxConcurrent, metrics.inflight('inbound'), {
      peer: config.inbound.peerShare,
      subject: config.inbound.subjectShare,
    }),
    // The outbound port's only peer is the app: no peer share there.
    outbound: createInflight(config.outbound.maxConcurrent, metrics.inflight('outbound'), {
      peer: 1,
      subject: config.outbound.subjectShare,
    }),
  };
  const mesh = startSidecarMesh(config, `sidecar ${config.service}`, { logger, now });
  let collaborators: Collaborators | undefined;
  let closing = false;
  const readiness = createReadiness({
    part: 'sidecar',
    service: config.service,
    logger,
    mesh,
    collaborators: () => collaborators,
    closing: () => closing,
    announce: deps.announce,
    policyVersion: (version) => metrics.policyVersion(version),
  });
  // Whatever listens is closed by close(), even when start() failed halfway.
  const servers = createServerSet();

  return {
    ready: readiness.refresh,
    async start() {
      collaborators =
        deps.collaborators ?? (await createCollaborators(config, { logger, now, mesh, metrics, tracing }));
      const c = collaborators;
      readiness.start();
      const ctx: SidecarContext = {
        service: config.service,
        readiness: readiness.state,
        policy: c.policy,
        verifier: c.verifier,
        verifiedCache: c.verifiedCache,
        handles: c.handles,
        requestIds: createRequestIds(),
        forwarder,
        metrics,
        tracing,
        logger,
        maxTokenBytes: config.limits.maxTokenBytes,
        subjectPseudonym: createSubjectPseudonym(config.telemetry),
      };
      const admin = createAdminHandler({
        ready: readiness.refresh,
        waitingFor: readiness.waitingFor,
        problems: readiness.problems,
        metrics,
        runtime: createRuntimeMetrics('sidecar', config.service),
        ...(mesh === undefined ? {} : { identity: () => mesh.identity.status() }),
      });
      return await startServers(config, servers, {
        ctx,
        mesh,
        metrics,
        inflight,
        admin,
        exchanger: () => c.exchanger(),
      });
    },
    async close(graceMs = config.shutdown.graceMs) {
      if (closing) return;
      closing = true;
      readiness.stop();
      await servers.drain(graceMs, inflight, logger);
      forwarder.close();
      await collaborators?.close();
      await mesh?.client.close();
      mesh?.identity.close();
      await servers.closeAdmin();
    },
  };
}

/** The servers listening, and how they are stopped. */
interface ServerSet {
  /** Listens with a data-plane server; it is drained and closed by drain(). */
  serve(plane: Http1Server, port: number, host: string): Promise<number>;
  serveAdmin(server: Server, port: number, host: string): Promise<number>;
  /** Stops accepting; requests in flight get `graceMs`, then every data-plane connection is cut. */
  drain(
    graceMs: number,
    inflight: { readonly inbound: Inflight; readonly outbound: Inflight },
    logger: Logger,
  ): Promise<void>;
  closeAdmin(): Promise<void>;
}

function createServerSet(): ServerSet {
  const dataPlane: Http1Server[] = [];
  let adminServer: Server | undefined;
  return {
    async serve(plane, port, host) {
      const bound = await listenOn(plane.server, port, host);
      dataPlane.push(plane);
      return bound;
    },
    async serveAdmin(server, port, host) {
      adminServer = server;
      return await listenOn(server, port, host);
    },
    async drain(graceMs, { inbound, outbound }, logger) {
      const stopped = dataPlane.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve())));
      // Connections between requests go now; those with a request in flight close after its response.
      for (const server of dataPlane) server.drain();
      const drained = Promise.all([inbound.idle(), outbound.idle()]);
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), graceMs)));
      const outcome = await Promise.race([drained.then(() => 'drained' as const), timedOut]);
      clearTimeout(timer);
      if (outcome === 'timeout')
        logger.warn(
          { event: 'shutdown', inflight: inbound.count() + outbound.count() },
          'grace period over, cutting requests still in flight',
        );
      for (const server of dataPlane) server.closeAll();
      await Promise.all(stopped);
    },
    async closeAdmin() {
      const admin = adminServer;
      if (admin === undefined) return;
      admin.closeAllConnections();
      await new Promise<void>((resolve) => admin.close(() => resolve()));
    },
  };
}

interface ServerParts {
  readonly ctx: SidecarContext;
  readonly mesh: SidecarMesh | undefined;
  readonly metrics: SidecarMetrics;
  readonly inflight: { readonly inbound: Inflight; readonly outbound: Inflight };
  readonly admin: Parameters<typeof createServer>[1];
  readonly exchanger: () => ReturnType<Collaborators['exchanger']>;
}

/** The inbound port (plaintext or mtls, and an entrypoint's plaintext port), the outbound port and the admin port, listening. */
async function startServers(config: SidecarConfig, servers: ServerSet, parts: ServerParts): Promise<SidecarPorts> {
  const { ctx, mesh, metrics, inflight } = parts;
  const { limits } = config;
  const plain = (handler: StreamHandler, peerCap = limits.maxConnectionsPerPeer, allowConnect = false): Http1Server =>
    createHttp1Server(handler, dataPlaneOptions(limits, metrics, peerCap, allowConnect));
  const inboundOptions = {
    app: upstreamOrigin(new URL(config.inbound.app)),
    forwardToken: config.inbound.forwardToken,
    timeoutMs: config.inbound.timeoutMs,
    bodyTimeoutMs: config.inbound.bodyTimeoutMs,
    inflight: inflight.inbound,
  };
  const inbound = createInboundHandler(ctx, {
    ...inboundOptions,
    ...(mesh === undefined
      ? { listener: 'plaintext' as const }
      : { listener: 'mtls' as const, peerOf: (stream: RequestStream) => peerOf(stream.socket, mesh.map) }),
  });
  const outbound = createOutboundHandler(ctx, {
    stsIssuer: config.sts.issuer,
    upstreams: config.upstreams,
    mesh: mesh === undefined ? undefined : { client: mesh.client, map: mesh.map },
    defaultUpstreamPort: config.outbound.defaultUpstreamPort,
    timeoutMs: config.outbound.timeoutMs,
    exchanger: parts.exchanger,
    inflight: inflight.outbound,
  });
  const inboundPort = await servers.serve(
    mesh === undefined ? plain(inbound) : mtlsInboundServer(inbound, mesh, config, metrics),
    config.inbound.port,
    config.host,
  );
  // An entrypoint behind an ingress outside the mesh: a second, plaintext port that takes external-IdP tokens only.
  const plaintextInbound =
    mesh === undefined || config.inbound.plaintextPort === undefined
      ? undefined
      : await servers.serve(
          plain(createInboundHandler(ctx, { ...inboundOptions, listener: 'plaintext-entry' })),
          config.inbound.plaintextPort,
          config.host,
        );
  // The outbound port's only peer is the app: the per-peer cap is the port's cap. A CONNECT opens a tunnel there.
  const outboundPort = await servers.serve(
    plain(outbound, limits.maxConnections, true),
    config.outbound.port,
    config.outbound.host,
  );
  const adminPort = await servers.serveAdmin(
    createServer({ maxHeaderSize: 8192 }, parts.admin),
    config.admin.port,
    config.host,
  );
  return {
    inbound: inboundPort,
    outbound: outboundPort,
    admin: adminPort,
    ...(plaintextInbound === undefined ? {} : { plaintextInbound }),
  };
}
