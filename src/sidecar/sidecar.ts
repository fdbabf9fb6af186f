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
import type { Server as TlsServer } from 'node:tls';
import type { RequestStream } from '../dataplane/stream.ts';
import { createHttp1Server, type Http1Server, type Http1ServerOptions } from '../dataplane/server.ts';
import { createMeshClient } from '../identity/mesh-client.ts';
import { refuseUnverifiedPeers, serverTlsOptions } from '../identity/tls.ts';
import { startMeshIdentity } from '../identity/transport.ts';
import type { Logger } from 'pino';
import { createRuntimeMetrics } from '../telemetry/runtime-metrics.ts';
import { createSubjectPseudonym } from '../telemetry/subject-pseudonym.ts';
import { createAdminHandler } from './admin.ts';
import { type Tracing, TRACING_OFF } from '../telemetry/tracing.ts';
import type { Collaborators, SidecarContext } from './collaborators.ts';
import { createCollaborators, type SidecarMesh } from './wiring.ts';
import type { SidecarConfig } from './config.ts';
import { createForwarder, upstreamOrigin } from './forward.ts';
import { createInboundHandler } from './inbound.ts';
import { createSidecarMetrics } from './metrics.ts';
import { createOutboundHandler } from './outbound.ts';
import { createRequestIds } from './context-handles.ts';
import { createInflight, refusalAnswer } from './pipeline.ts';
import { peerOf } from './token-binding.ts';

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

// How often readiness problems are looked for: they come from policy reloads, which are seconds apart.
const PROBLEM_CHECK_MS = 1_000;
// How stale the readiness every request reads may be (a key source going stale, a certificate expiring).
const READINESS_REFRESH_MS = 250;

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
    h2: { connectTimeoutMs: config.connectTimeoutMs, idleTimeoutMs: limits.upstreamKeepAliveTimeoutMs, maxHeaderListSize: limits.maxResponseHeaderBytes },
  });
  const inboundInflight = createInflight(config.inbound.maxConcurrent, metrics.inflight('inbound'), { peer: config.inbound.peerShare, subject: config.inbound.subjectShare });
  // The outbound port's only peer is the app: no peer share there.
  const outboundInflight = createInflight(config.outbound.maxConcurrent, metrics.inflight('outbound'), { peer: 1, subject: config.outbound.subjectShare });
  const meshIdentity = startMeshIdentity(config, `sidecar ${config.service}`, { logger, now });
  const mesh: SidecarMesh | undefined = meshIdentity === undefined ? undefined : { ...meshIdentity, client: createMeshClient({ identity: meshIdentity.identity, logger, connectTimeoutMs: config.connectTimeoutMs }) };
  let collaborators: Collaborators | undefined;
  let closing = false;
  const dataPlane: Http1Server[] = [];
  let adminServer: Server | undefined;

  // mtls: without a valid certificate nothing can be sent or received, so readiness waits for it too.
  const identityMissing = (): boolean => mesh !== undefined && mesh.identity.current() === undefined;
  const waitingFor = (): string[] => [...(collaborators === undefined ? ['startup'] : collaborators.waitingFor()), ...(identityMissing() ? ['identity'] : [])];
  // Without a usable certificate neither the policy server nor the STS can be reached: the certificate is the cause to name, not what follows from it.
  const problems = (): string[] => {
    const identity = identityMissing() ? mesh?.identity.status().problem : undefined;
    return identity !== undefined ? [identity] : (collaborators?.problems?.() ?? []);
  };
  let problemTimer: NodeJS.Timeout | undefined;
  let announced: readonly string[] = [];
  // Each problem is announced once when it appears and once when it goes away: loud, not repeated every second.
  const announceProblems = (): void => {
    const now = problems();
    for (const problem of now.filter((p) => !announced.includes(p))) {
      logger.error({ event: 'not_ready', reason: problem }, 'not ready');
      deps.announce?.(`baton sidecar ${config.service}: NOT READY: ${problem}`);
    }
    // Each problem that went away, once; the last one says whether that made the sidecar ready.
    for (const gone of announced.filter((p) => !now.includes(p))) {
      logger.info({ event: 'problem_resolved', reason: gone }, 'readiness problem resolved');
      deps.announce?.(`baton sidecar ${config.service}: problem resolved (${gone.split(/[:.;]/, 1)[0]})${ready() ? '; ready' : `; still waiting for ${waitingFor().join(', ')}`}`);
    }
    announced = now;
  };
  // Readiness is decided here, not per request: every request reads one boolean (./pipeline.ts step 3), refreshed
  // every READINESS_REFRESH_MS, on each policy update and on each /readyz probe, so a probe and the requests after it agree.
  const readiness = { ready: false };
  const refreshReadiness = (): boolean => (readiness.ready = !closing && collaborators !== undefined && collaborators.waitingFor().length === 0 && !identityMissing());
  const ready = refreshReadiness;
  let readinessTimer: NodeJS.Timeout | undefined;

  return {
    ready,
    async start() {
      collaborators = deps.collaborators ?? (await createCollaborators(config, { logger, now, mesh, metrics, tracing }));
      const c = collaborators;
      c.policy.onUpdate?.((_policy, version) => {
        // The policy source logs the update, once (policy/distribution/source.ts).
        metrics.policyVersion(version);
        refreshReadiness();
      });
      refreshReadiness();
      readinessTimer = setInterval(refreshReadiness, READINESS_REFRESH_MS);
      readinessTimer.unref();
      const version = c.policy.version();
      if (version !== undefined) metrics.policyVersion(version);

      const ctx: SidecarContext = {
        service: config.service,
        readiness,
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
      const inboundOptions = {
        app: upstreamOrigin(new URL(config.inbound.app)),
        forwardToken: config.inbound.forwardToken,
        timeoutMs: config.inbound.timeoutMs,
        bodyTimeoutMs: config.inbound.bodyTimeoutMs,
        inflight: inboundInflight,
      };
      const inbound = createInboundHandler(ctx, {
        ...inboundOptions,
        ...(mesh === undefined ? { listener: 'plaintext' as const } : { listener: 'mtls' as const, peerOf: (stream: RequestStream) => peerOf(stream.socket, mesh.map) }),
      });
      const outbound = createOutboundHandler(ctx, {
        stsIssuer: config.sts.issuer,
        upstreams: config.upstreams,
        mesh: mesh === undefined ? undefined : { client: mesh.client, map: mesh.map },
        defaultUpstreamPort: config.outbound.defaultUpstreamPort,
        timeoutMs: config.outbound.timeoutMs,
        exchanger: () => c.exchanger(),
        inflight: outboundInflight,
      });
      const admin = createAdminHandler({ ready, waitingFor: () => (closing ? ['shutdown'] : waitingFor()), problems: () => (closing ? [] : problems()), metrics, runtime: createRuntimeMetrics('sidecar', config.service), ...(mesh === undefined ? {} : { identity: () => mesh.identity.status() }) });
      problemTimer = setInterval(announceProblems, PROBLEM_CHECK_MS);
      problemTimer.unref();

      const inboundPort = await listen(mesh === undefined ? dataPlaneServer(inbound) : mtlsInboundServer(inbound, mesh), config.inbound.port, config.host);
      // An entrypoint behind an ingress outside the mesh: a second, plaintext port that takes external-IdP tokens only.
      const plaintextInbound =
        mesh === undefined || config.inbound.plaintextPort === undefined
          ? undefined
          : await listen(dataPlaneServer(createInboundHandler(ctx, { ...inboundOptions, listener: 'plaintext-entry' })), config.inbound.plaintextPort, config.host);
      // The outbound port's only peer is the app: the per-peer cap is the port's cap. A CONNECT opens a tunnel there.
      const outboundPort = await listen(dataPlaneServer(outbound, limits.maxConnections, true), config.outbound.port, config.outbound.host);
      adminServer = createServer({ maxHeaderSize: 8192 }, admin);
      const adminPort = await listen({ server: adminServer, drain: () => adminServer?.closeIdleConnections(), closeAll: () => adminServer?.closeAllConnections() }, config.admin.port, config.host, false);
      return { inbound: inboundPort, outbound: outboundPort, admin: adminPort, ...(plaintextInbound === undefined ? {} : { plaintextInbound }) };
    },
    async close(graceMs = config.shutdown.graceMs) {
      if (closing) return;
      closing = true;
      refreshReadiness();
      clearInterval(problemTimer);
      clearInterval(readinessTimer);
      const stopped = dataPlane.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve())));
      // Connections between requests go now; those with a request in flight close after its response.
      for (const server of dataPlane) server.drain();
      const drained = Promise.all([inboundInflight.idle(), outboundInflight.idle()]);
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), graceMs)));
      const outcome = await Promise.race([drained.then(() => 'drained' as const), timedOut]);
      clearTimeout(timer);
      if (outcome === 'timeout') logger.warn({ event: 'shutdown', inflight: inboundInflight.count() + outboundInflight.count() }, 'grace period over, cutting requests still in flight');
      for (const server of dataPlane) server.closeAll();
      await Promise.all(stopped);
      forwarder.close();
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

  function dataPlaneServer(handler: (stream: RequestStream) => void, peerCap = limits.maxConnectionsPerPeer, allowConnect = false): Http1Server {
    return createHttp1Server(handler, dataPlaneOptions(peerCap, allowConnect));
  }

  function dataPlaneOptions(peerCap: number, allowConnect = false): Http1ServerOptions {
    return {
      maxHeadBytes: limits.maxHeaderBytes,
      allowConnect,
      h2: {
        maxConcurrentStreams: limits.http2.maxConcurrentStreams,
        maxHeaderListSize: limits.maxHeaderBytes,
        idleTimeoutMs: limits.keepAliveTimeoutMs,
        resetBurst: limits.http2.resetBurst,
        resetRate: limits.http2.resetRate,
        maxSessionMemoryMb: limits.http2.maxSessionMemoryMb,
      },
      keepAliveTimeoutMs: limits.keepAliveTimeoutMs,
      headersTimeoutMs: limits.headTimeoutMs,
      handshakeTimeoutMs: limits.handshakeTimeoutMs,
      maxConnections: limits.maxConnections,
      maxConnectionsPerPeer: peerCap,
      refusal: refusalAnswer,
      onCapped: (cap) => metrics.connectionCapped(cap),
    };
  }

  /**
   * The inbound port on TLS 1.3 with this workload's certificate, asking for
   * the caller's (required, or optional at an entrypoint behind an ingress).
   * A rotation swaps the secure context: connections already open, and the
   * requests on them, go on with the old one; new handshakes get the new one.
   */
  function mtlsInboundServer(handler: (stream: RequestStream) => void, m: SidecarMesh): Http1Server {
    const svid = m.identity.current();
    const tls = svid === undefined ? { requestCert: true, rejectUnauthorized: config.inbound.clientCertificate === 'required', minVersion: 'TLSv1.3' as const } : serverTlsOptions(svid, config.inbound.clientCertificate);
    const plane = createHttp1Server(handler, dataPlaneOptions(limits.maxConnectionsPerPeer), tls);
    const server = plane.server as TlsServer;
    // Optional: a caller may present no certificate, but one that is presented must verify against the bundle.
    if (config.inbound.clientCertificate === 'optional') refuseUnverifiedPeers(server);
    const stop = m.identity.onRotate((next) => server.setSecureContext(serverTlsOptions(next, config.inbound.clientCertificate)));
    server.once('close', stop);
    return plane;
  }

  async function listen(plane: Pick<Http1Server, 'server' | 'drain' | 'closeAll'>, port: number, host: string, data = true): Promise<number> {
    const { server } = plane;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    if (data) dataPlane.push(plane as Http1Server);
    const address = server.address();
    return typeof address === 'object' && address !== null ? address.port : port;
  }
}
