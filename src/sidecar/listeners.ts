/**
 * The sidecar's data-plane servers as its limits configure them: the socket
 * data plane (src/dataplane/) on node:net, or on node:tls for the inbound
 * port in mtls mode, and the listen step every port shares. Nothing here
 * decides about a request; the handlers do.
 */
import type { Server as NetServer } from 'node:net';
import type { Server as TlsServer } from 'node:tls';
import type { RequestStream } from '../dataplane/stream.ts';
import { createHttp1Server, type Http1Server, type Http1ServerOptions } from '../dataplane/server.ts';
import { refuseUnverifiedPeers, serverTlsOptions } from '../identity/tls.ts';
import type { SidecarConfig } from './config.ts';
import type { SidecarMetrics } from './metrics.ts';
import { refusalAnswer } from './pipeline.ts';
import type { SidecarMesh } from './wiring.ts';

export type StreamHandler = (stream: RequestStream) => void;

/** The server options of a data-plane port: limits, HTTP/2, the refusal answer, the cap metric. */
export function dataPlaneOptions(
  limits: SidecarConfig['limits'],
  metrics: SidecarMetrics,
  peerCap: number,
  allowConnect = false,
): Http1ServerOptions {
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
export function mtlsInboundServer(
  handler: StreamHandler,
  mesh: SidecarMesh,
  config: Pick<SidecarConfig, 'inbound' | 'limits'>,
  metrics: SidecarMetrics,
): Http1Server {
  const { clientCertificate } = config.inbound;
  const svid = mesh.identity.current();
  const tls =
    svid === undefined
      ? { requestCert: true, rejectUnauthorized: clientCertificate === 'required', minVersion: 'TLSv1.3' as const }
      : serverTlsOptions(svid, clientCertificate);
  const plane = createHttp1Server(
    handler,
    dataPlaneOptions(config.limits, metrics, config.limits.maxConnectionsPerPeer),
    tls,
  );
  const server = plane.server as TlsServer;
  // Optional: a caller may present no certificate, but one that is presented must verify against the bundle.
  if (clientCertificate === 'optional') refuseUnverifiedPeers(server);
  const stop = mesh.identity.onRotate((next) => server.setSecureContext(serverTlsOptions(next, clientCertificate)));
  server.once('close', stop);
  return plane;
}

/** Listens on host:port; resolves with the port bound (an ephemeral one for port 0). */
export async function listenOn(server: NetServer, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  return typeof address === 'object' && address !== null ? address.port : port;
}
