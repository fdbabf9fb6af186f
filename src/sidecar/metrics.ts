/**
 * The sidecar's series on the admin port's `/metrics`, on the shared
 * registry (src/telemetry/prometheus-text.ts).
 * Names follow Prometheus conventions (`baton_` prefix, `_total` counters,
 * `_seconds` durations); labels are bounded sets (directions, services the
 * policy names, statuses, error codes, rule ids) and never a user id.
 *
 * The request series are the RED view (rate, errors, duration) of both
 * data-plane ports. A handler resolves its `(direction, target)` handle
 * once, at start or when it first meets a target, so a request costs two
 * small-map lookups by status and reason and no string building; the
 * in-flight gauges are handles too, and decisions and exchange results are
 * found through nested maps keyed by the values themselves. The escaped
 * label text is built once per series.
 */

import {
  DURATION_BUCKETS,
  type Histogram,
  histogram,
  labelledHistogram,
  labelledSeries,
  nestedCounter,
  renderFamily,
  renderHistogramFamily,
  series as newSeries,
} from '../telemetry/prometheus-text.ts';

export type Direction = 'inbound' | 'outbound';

/** The `reason` of a request whose status is the app's (inbound) or the upstream's (outbound) own answer. */
export const FORWARDED = 'forwarded';

/**
 * The `target` of an outbound request refused before its target service
 * was known (bad request target, a name the policy does not have): the
 * app's text never becomes a label. Not a DNS-1123 label, so no service
 * can be called this.
 */
export const UNKNOWN_TARGET = '_OTHER';

/** Token acquisition buckets: an in-process hit takes microseconds, an STS round trip milliseconds. */
export const EXCHANGE_BUCKETS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];

/** The request series of one direction and target, resolved once per handler or target. */
export interface RequestMetrics {
  /** One request done: the status sent, why (a baton error code, or FORWARDED), and seconds from admission to the last byte. */
  done(status: number, reason: string, seconds: number): void;
}

export type CacheResult = 'hit' | 'miss' | 'stale-refresh';

export interface SidecarMetrics {
  requests(direction: Direction, target: string): RequestMetrics;
  decision(rule: string, decision: 'allow' | 'deny' | 'would_deny'): void;
  /** A shadow-mode denial let through: what enforcing the rule would break. */
  shadowDenial(target: string, rule: string): void;
  /** How an outbound call got its token, and how long that took: a `miss` waited for an STS round trip. */
  exchange(result: CacheResult, seconds: number): void;
  /** The shared Redis tier: a value that would not open, or a change of state (once per change, not per request). */
  redisTier(event: 'unsealable' | 'available' | 'unavailable' | 'auth' | 'noperm'): void;
  policyVersion(version: number): void;
  /** An inbound token refused for its certificate binding (RFC 8705 §3), by code. */
  bindingRefusal(code: string): void;
  /** An idempotent request sent again on a fresh upstream connection: the kept-alive one had closed unanswered. */
  upstreamRetry(): void;
  /** A connection closed at accept because a data-plane port's cap was reached: the port's own, or one peer address's. */
  connectionCapped(cap: 'listener' | 'peer'): void;
  /** The in-flight gauge of one direction, resolved once. */
  inflight(direction: Direction): (delta: 1 | -1) => void;
  render(): string;
}

export function createSidecarMetrics(): SidecarMetrics {
  const requestHandles = new Map<string, RequestHandle>();
  const decisions = nestedCounter('rule', 'decision');
  const shadowDenials = nestedCounter('target', 'rule');
  const inflight = labelledSeries('direction');
  // One histogram per cache result; its count is also baton_token_cache_requests_total.
  const exchange = labelledHistogram('result', EXCHANGE_BUCKETS);
  const redisFaults = labelledSeries('fault');
  const redisAvailable = newSeries();
  const unsealable = newSeries();
  let redisSeen = false;
  const bindingRefusals = labelledSeries('code');
  const policyVersion = newSeries();
  const policyUpdates = newSeries();
  const upstreamRetries = newSeries();
  const capped = labelledSeries('cap');

  return {
    requests(direction, target) {
      const key = `${direction}\u0000${target}`;
      let handle = requestHandles.get(key);
      if (handle === undefined) requestHandles.set(key, (handle = requestHandle({ direction, target })));
      return handle;
    },
    decision: (rule, decision) => decisions.add(rule, decision),
    shadowDenial: (target, rule) => shadowDenials.add(target, rule),
    inflight(direction) {
      const gauge = inflight.of(direction);
      return (delta) => {
        gauge.value += delta;
      };
    },
    redisTier(event) {
      if (event === 'unsealable') unsealable.value++;
      else {
        redisSeen = true;
        redisAvailable.value = event === 'available' ? 1 : 0;
        if (event !== 'available') redisFaults.add(event);
      }
    },
    bindingRefusal: (code) => bindingRefusals.add(code),
    upstreamRetry: () => {
      upstreamRetries.value++;
    },
    connectionCapped: (cap) => capped.add(cap),
    policyVersion(version) {
      if (version !== policyVersion.value) policyUpdates.value++;
      policyVersion.value = version;
    },
    exchange(result, seconds) {
      exchange.of(result).observe(seconds);
    },
    render() {
      const lines: string[] = [];
      const requests = [...requestHandles.values()].flatMap((h) => h.series());
      renderFamily(
        lines,
        'baton_requests_total',
        'counter',
        'Requests answered, by direction, target service, status code and reason (a baton error code, or forwarded).',
        requests.map((h) => ({ labels: h.labels, value: h.count })),
      );
      renderHistogramFamily(
        lines,
        'baton_request_duration_seconds',
        'Time from admitting a request to its last response byte, by direction, target service, status code and reason.',
        requests,
      );
      renderFamily(
        lines,
        'baton_decisions_total',
        'counter',
        'Call-graph policy decisions, by rule and decision.',
        decisions.series(),
      );
      renderFamily(
        lines,
        'baton_shadow_denials_total',
        'counter',
        'Calls a shadow-mode rule would have denied and let through, by target and rule.',
        shadowDenials.series(),
      );
      renderFamily(
        lines,
        'baton_token_cache_requests_total',
        'counter',
        'Exchanged-token cache lookups, by result.',
        exchange.all().map((h) => ({ labels: h.labels, value: h.count })),
      );
      renderHistogramFamily(
        lines,
        'baton_exchange_duration_seconds',
        'Time to obtain a token for an outbound call, by cache result (miss: an STS round trip).',
        exchange.all(),
      );
      renderFamily(
        lines,
        'baton_token_binding_refusals_total',
        'counter',
        'Inbound tokens refused for their certificate binding (RFC 8705), by code.',
        bindingRefusals.series(),
      );
      if (redisSeen) {
        renderFamily(
          lines,
          'baton_redis_available',
          'gauge',
          'Whether the shared Redis token tier is in use (1) or the sidecar runs on its in-process cache (0).',
          [redisAvailable],
        );
        renderFamily(
          lines,
          'baton_redis_faults_total',
          'counter',
          'Times the Redis token tier became unusable, by fault: unavailable, auth (wrong ACL user or password), noperm (ACL refused a command or key).',
          redisFaults.series(),
        );
      }
      renderFamily(
        lines,
        'baton_token_cache_unsealable_total',
        'counter',
        'Redis entries that failed to open (another key, moved, tampered) and were treated as misses.',
        [unsealable],
      );
      renderFamily(lines, 'baton_inflight_requests', 'gauge', 'Requests in flight, by direction.', inflight.series());
      renderFamily(lines, 'baton_policy_version', 'gauge', 'Version of the call-graph policy in force (0: none yet).', [
        policyVersion,
      ]);
      renderFamily(
        lines,
        'baton_policy_updates_total',
        'counter',
        'Verified call-graph policy versions taken into force.',
        [policyUpdates],
      );
      renderFamily(
        lines,
        'baton_connections_capped_total',
        'counter',
        'Connections closed at accept because a data-plane port was at its cap (limits.maxConnections: listener) or one address was (limits.maxConnectionsPerPeer: peer).',
        capped.series(),
      );
      renderFamily(
        lines,
        'baton_upstream_retries_total',
        'counter',
        'Idempotent requests sent again on a fresh upstream connection because the kept-alive one closed before answering.',
        [upstreamRetries],
      );
      return lines.join('\n') + '\n';
    },
  };
}

interface RequestHandle extends RequestMetrics {
  series(): Histogram[];
}

function requestHandle(labels: { direction: Direction; target: string }): RequestHandle {
  // Status, then reason: numbers and interned code strings as keys, nothing concatenated per request.
  const byStatus = new Map<number, Map<string, Histogram>>();
  return {
    done(status, reason, seconds) {
      let byReason = byStatus.get(status);
      if (byReason === undefined) byStatus.set(status, (byReason = new Map()));
      let series = byReason.get(reason);
      if (series === undefined)
        byReason.set(reason, (series = histogram(DURATION_BUCKETS, { ...labels, code: String(status), reason })));
      series.observe(seconds);
    },
    series: () => [...byStatus.values()].flatMap((byReason) => [...byReason.values()]),
  };
}
