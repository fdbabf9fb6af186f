/**
 * One sidecar: the inbound, outbound and admin servers around one set of
 * collaborators (policy source, token verifier and caches, context-handle
 * store, exchange client), and the shutdown that drains them.
 *
 * The data-plane servers are plain node:http: the hot path needs exact
 * control of headers and streaming, and must cost little.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { PROBLEM_CONTENT_TYPE, toProblem } from '../core/problem.ts';
import type { Logger } from '../telemetry/logger.ts';
import { createSubjectPseudonym } from '../telemetry/subject-pseudonym.ts';
import { createAdminHandler } from './admin.ts';
import type { ContextHandles, PolicyView, TokenExchanger, TokenVerifier, VerifiedSubject, VerifiedTokenCache } from './collaborators.ts';
import type { SidecarConfig } from './config.ts';
import { createForwarder } from './forward.ts';
import { createInboundHandler } from './inbound.ts';
import { createInflight } from './inflight.ts';
import { createSidecarMetrics } from './metrics.ts';
import { createOutboundHandler } from './outbound.ts';
import { MethodNotAllowedError } from './problems.ts';

/** Everything the servers use, built from config (./wiring.ts) or passed in by tests. */
export interface Collaborators<V extends VerifiedSubject = VerifiedSubject> {
  readonly policy: PolicyView & { onUpdate?(listener: (policy: unknown, version: number) => void): () => void };
  readonly verifier: TokenVerifier<V>;
  readonly verifiedCache: VerifiedTokenCache<V>;
  readonly handles: ContextHandles<V>;
  /** Undefined until the STS token endpoint is known. */
  exchanger(): TokenExchanger | undefined;
  /** What readiness still waits for (`policy`, `sts keys`, `token endpoint`); empty when ready. */
  waitingFor(): string[];
  close(): Promise<void>;
}

export interface SidecarDeps {
  readonly logger: Logger;
  /** Epoch milliseconds. */
  readonly now?: () => number;
  /** Tests pass stand-ins; otherwise they are built from config. */
  readonly collaborators?: Collaborators;
}

export interface SidecarPorts {
  readonly inbound: number;
  readonly outbound: number;
  readonly admin: number;
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
  const metrics = createSidecarMetrics();
  const forwarder = createForwarder();
  const inboundInflight = createInflight(config.inbound.maxConcurrent, (d) => metrics.inflight('inbound', d), { peer: config.inbound.peerShare, subject: config.inbound.subjectShare });
  // The outbound port's only peer is the app: no peer share there.
  const outboundInflight = createInflight(config.outbound.maxConcurrent, (d) => metrics.inflight('outbound', d), { peer: 1, subject: config.outbound.subjectShare });
  let collaborators: Collaborators | undefined;
  let closing = false;
  const servers: Server[] = [];

  const waitingFor = (): string[] => (collaborators === undefined ? ['startup'] : collaborators.waitingFor());
  const ready = (): boolean => !closing && collaborators !== undefined && collaborators.waitingFor().length === 0;

  return {
    ready,
    async start() {
      collaborators = deps.collaborators ?? (await (await import('./wiring.ts')).createCollaborators(config, { logger, now }));
      const c = collaborators;
      c.policy.onUpdate?.((_policy, version) => {
        metrics.policyVersion(version);
        logger.info({ event: 'policy_updated', policyVersion: version }, 'policy updated');
      });
      const version = c.policy.version();
      if (version !== undefined) metrics.policyVersion(version);

      const shared = { subjectPseudonym: createSubjectPseudonym(config.telemetry), ready, policy: c.policy, verifier: c.verifier, verifiedCache: c.verifiedCache, handles: c.handles, forwarder, metrics, maxTokenBytes: config.limits.maxTokenBytes };
      const inbound = createInboundHandler({
        ...shared,
        service: config.service,
        appOrigin: new URL(config.inbound.app).origin,
        forwardToken: config.inbound.forwardToken,
        timeoutMs: config.inbound.timeoutMs,
        bodyTimeoutMs: config.inbound.bodyTimeoutMs,
        inflight: inboundInflight,
        logger: logger.child({ direction: 'inbound' }),
      });
      const outbound = createOutboundHandler({
        ...shared,
        service: config.service,
        upstreams: config.upstreams,
        defaultUpstreamPort: config.outbound.defaultUpstreamPort,
        timeoutMs: config.outbound.timeoutMs,
        exchanger: () => c.exchanger(),
        inflight: outboundInflight,
        logger: logger.child({ direction: 'outbound' }),
        now,
      });
      const admin = createAdminHandler({ ready, waitingFor: () => (closing ? ['shutdown'] : waitingFor()), metrics });

      const inboundPort = await listen(dataPlaneServer(inbound), config.inbound.port, config.host);
      const outboundServer = dataPlaneServer(outbound);
      // node:http hands CONNECT to a 'connect' listener, or drops the socket: answer it instead.
      outboundServer.on('connect', refuseTunnel);
      const outboundPort = await listen(outboundServer, config.outbound.port, config.outbound.host);
      const adminPort = await listen(createServer({ maxHeaderSize: 8192 }, admin), config.admin.port, config.host);
      return { inbound: inboundPort, outbound: outboundPort, admin: adminPort };
    },
    async close(graceMs = config.shutdown.graceMs) {
      if (closing) return;
      closing = true;
      const [admin, ...dataPlane] = [servers[servers.length - 1], ...servers.slice(0, -1)];
      const stopped = dataPlane.map((server) => new Promise<void>((resolve) => server.close(() => resolve())));
      const drained = Promise.all([inboundInflight.idle(), outboundInflight.idle()]);
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), graceMs)));
      const outcome = await Promise.race([drained.then(() => 'drained' as const), timedOut]);
      clearTimeout(timer);
      if (outcome === 'timeout') logger.warn({ event: 'shutdown', inflight: inboundInflight.count() + outboundInflight.count() }, 'grace period over, cutting requests still in flight');
      for (const server of dataPlane) server.closeAllConnections();
      await Promise.all(stopped);
      await forwarder.close();
      await collaborators?.close();
      if (admin !== undefined) {
        admin.closeAllConnections();
        await new Promise<void>((resolve) => admin.close(() => resolve()));
      }
    },
  };

  function dataPlaneServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Server {
    const server = createServer({ maxHeaderSize: config.limits.maxHeaderBytes, keepAliveTimeout: 5_000 }, (req, res) => {
      // Draining: answer what is in flight, but tell keep-alive clients to go elsewhere.
      if (closing) res.shouldKeepAlive = false;
      handler(req, res);
    });
    return server;
  }

  async function listen(server: Server, port: number, host: string): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    servers.push(server);
    const address = server.address();
    return typeof address === 'object' && address !== null ? address.port : port;
  }
}

function refuseTunnel(_req: IncomingMessage, socket: Duplex): void {
  const body = JSON.stringify(toProblem(new MethodNotAllowedError('expected a plain http:// request; CONNECT tunnels (https through a proxy) are not intercepted')));
  socket.end(`HTTP/1.1 405 Method Not Allowed\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}
