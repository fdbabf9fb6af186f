/**
 * The admin port: `/livez` (the process answers), `/readyz` (a verified
 * policy, the STS keys and the token endpoint are in hand, and no shutdown
 * has begun) and `/metrics` (Prometheus text). Kept off the data-plane
 * ports so that neither an app nor a caller can reach it through them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { IdentityState, IdentityStatus } from '../identity/workload-identity.ts';
import { PROMETHEUS_CONTENT_TYPE } from '../telemetry/prometheus-text.ts';
import type { RuntimeMetrics } from '../telemetry/runtime-metrics.ts';
import type { SidecarMetrics } from './metrics.ts';

export interface AdminOptions {
  readonly ready: () => boolean;
  /** What is still missing, for people reading `/readyz`. */
  readonly waitingFor: () => readonly string[];
  /** Why, in sentences a person can act on (a policy that does not parse or does not name this service). */
  readonly problems?: () => readonly string[];
  readonly metrics: SidecarMetrics;
  /** mtls mode: the workload identity's state, for `/readyz` and the identity gauges. */
  readonly identity?: () => IdentityStatus;
  /** process_*, nodejs_* and baton_build_info, read at scrape time. */
  readonly runtime: RuntimeMetrics;
}

export function createAdminHandler(options: AdminOptions): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    req.resume();
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return send(res, 405, 'text/plain', 'method not allowed\n', { allow: 'GET, HEAD' });
    switch (path) {
      case '/livez':
        return send(res, 200, 'text/plain', 'ok\n');
      case '/readyz': {
        const identity = identityLine(options.identity?.());
        if (options.ready()) return send(res, 200, 'text/plain', `ready\n${identity}`);
        const why = options.problems?.() ?? [];
        return send(
          res,
          503,
          'text/plain',
          `not ready: waiting for ${options.waitingFor().join(', ') || 'shutdown'}\n${identity}${why.map((line) => `${line}\n`).join('')}`,
        );
      }
      case '/metrics': {
        const own = options.metrics.render() + readinessMetrics(options);
        options.runtime.render().then(
          (runtime) => send(res, 200, PROMETHEUS_CONTENT_TYPE, own + runtime),
          // A collector that fails must not cost the scrape baton's own series.
          () => send(res, 200, PROMETHEUS_CONTENT_TYPE, own),
        );
        return;
      }
      default:
        return send(res, 404, 'text/plain', 'not found\n');
    }
  };
}

// What readiness waits for (src/sidecar/wiring.ts), as gauge labels: the policy source and the STS's keys and endpoint.
const DEPENDENCIES: Readonly<Record<string, string>> = {
  policy: 'policy',
  'sts keys': 'sts_keys',
  'token endpoint': 'token_endpoint',
  identity: 'identity',
};
const IDENTITY_STATES: readonly IdentityState[] = ['ready', 'near_expiry', 'missing', 'expired', 'not_yet_valid'];

/** Why the identity is (not) fit for mTLS, for people reading `/readyz`: state, time left, the last reload failure. */
function identityLine(status: IdentityStatus | undefined): string {
  if (status === undefined) return '';
  const left = status.expiresInSeconds === undefined ? '' : `, expires in ${status.expiresInSeconds}s`;
  const reason =
    status.reason === undefined ? '' : `, ${status.reason}${status.detail === undefined ? '' : ` (${status.detail})`}`;
  return `identity: ${status.state}${left}${reason}\n`;
}

/** Whether the sidecar is ready, and which dependency it still lacks (a failing JWKS or policy server shows here). */
function readinessMetrics(options: AdminOptions): string {
  const missing = new Set(options.waitingFor());
  const lines = [
    '# HELP baton_ready Whether the sidecar answers /readyz with 200 (1) or not (0).',
    '# TYPE baton_ready gauge',
    `baton_ready ${options.ready() ? 1 : 0}`,
    '# HELP baton_dependency_ready Whether a dependency readiness waits for is in hand (1) or not (0).',
    '# TYPE baton_dependency_ready gauge',
  ];
  for (const [waitingName, label] of Object.entries(DEPENDENCIES)) {
    if (waitingName === 'identity' && options.identity === undefined) continue;
    lines.push(`baton_dependency_ready{dependency="${label}"} ${missing.has(waitingName) ? 0 : 1}`);
  }
  const identity = options.identity?.();
  if (identity !== undefined) {
    lines.push(
      "# HELP baton_identity_state The workload identity's state: 1 for the current one of ready, near_expiry, missing, expired, not_yet_valid.",
      '# TYPE baton_identity_state gauge',
    );
    for (const state of IDENTITY_STATES)
      lines.push(`baton_identity_state{state="${state}"} ${identity.state === state ? 1 : 0}`);
    lines.push(
      '# HELP baton_identity_expiry_timestamp_seconds When the workload certificate in use expires (Unix seconds; 0: none).',
      '# TYPE baton_identity_expiry_timestamp_seconds gauge',
    );
    lines.push(
      `baton_identity_expiry_timestamp_seconds ${identity.notAfter === undefined ? 0 : Math.floor(identity.notAfter / 1000)}`,
    );
    lines.push(
      '# HELP baton_identity_rotations_refused_total Certificate files refused because they named another SPIFFE ID than the identity in use.',
      '# TYPE baton_identity_rotations_refused_total counter',
    );
    lines.push(`baton_identity_rotations_refused_total ${identity.refusedRotations ?? 0}`);
  }
  return lines.join('\n') + '\n';
}

function send(
  res: ServerResponse,
  status: number,
  contentType: string,
  body: string,
  extra: Record<string, string> = {},
): void {
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...extra,
  });
  res.end(body);
}
