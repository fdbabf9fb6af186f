/**
 * A small Prometheus text-format registry for the admin port's `/metrics`.
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

type Labels = Readonly<Record<string, string>>;

interface Series {
  readonly labels: string;
  value: number;
}

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

/** Request latency buckets: loopback hops take well under a millisecond, an app or an upstream up to its timeout. */
export const REQUEST_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Token acquisition buckets: an in-process hit takes microseconds, an STS round trip milliseconds. */
export const EXCHANGE_BUCKETS: readonly number[] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

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
  /** The in-flight gauge of one direction, resolved once. */
  inflight(direction: Direction): (delta: 1 | -1) => void;
  render(): string;
}

export function createSidecarMetrics(): SidecarMetrics {
  const requestHandles = new Map<string, RequestHandle>();
  const decisions = nestedCounter('rule', 'decision');
  const shadowDenials = nestedCounter('target', 'rule');
  const inflight = new Map<Direction, Series>();
  // One histogram per cache result; its count is also baton_token_cache_requests_total.
  const exchange = new Map<CacheResult, Histogram>();
  const redisFaults = labelledCounter('fault');
  let unsealable = 0;
  let redisState: string | undefined;
  const bindingRefusals = labelledCounter('code');
  let policyVersion = 0;
  let policyUpdates = 0;

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
      let series = inflight.get(direction);
      if (series === undefined) inflight.set(direction, (series = { labels: formatLabels({ direction }), value: 0 }));
      const gauge = series;
      return (delta) => {
        gauge.value += delta;
      };
    },
    redisTier(event) {
      if (event === 'unsealable') unsealable++;
      else {
        redisState = event;
        if (event !== 'available') redisFaults.add(event);
      }
    },
    bindingRefusal: (code) => bindingRefusals.add(code),
    policyVersion(version) {
      if (version !== policyVersion) policyUpdates++;
      policyVersion = version;
    },
    exchange(result, seconds) {
      let histogram = exchange.get(result);
      if (histogram === undefined) exchange.set(result, (histogram = createHistogram(EXCHANGE_BUCKETS, { result })));
      histogram.observe(seconds);
    },
    render() {
      const lines: string[] = [];
      const series = [...requestHandles.values()].flatMap((h) => h.series());
      lines.push('# HELP baton_requests_total Requests answered, by direction, target service, status code and reason (a baton error code, or forwarded).', '# TYPE baton_requests_total counter');
      for (const s of series) lines.push(`baton_requests_total${s.labels} ${s.histogram.count}`);
      lines.push('# HELP baton_request_duration_seconds Time from admitting a request to its last response byte, by direction, target service, status code and reason.', '# TYPE baton_request_duration_seconds histogram');
      for (const s of series) s.histogram.render(lines, 'baton_request_duration_seconds');
      family(lines, 'baton_decisions_total', 'counter', 'Call-graph policy decisions, by rule and decision.', decisions.series());
      family(lines, 'baton_shadow_denials_total', 'counter', 'Calls a shadow-mode rule would have denied and let through, by target and rule.', shadowDenials.series());
      family(lines, 'baton_token_cache_requests_total', 'counter', 'Exchanged-token cache lookups, by result.', [...exchange.entries()].map(([result, h]) => ({ labels: formatLabels({ result }), value: h.count })));
      lines.push('# HELP baton_exchange_duration_seconds Time to obtain a token for an outbound call, by cache result (miss: an STS round trip).', '# TYPE baton_exchange_duration_seconds histogram');
      for (const histogram of exchange.values()) histogram.render(lines, 'baton_exchange_duration_seconds');
      family(lines, 'baton_token_binding_refusals_total', 'counter', 'Inbound tokens refused for their certificate binding (RFC 8705), by code.', bindingRefusals.series());
      if (redisState !== undefined) {
        family(lines, 'baton_redis_available', 'gauge', 'Whether the shared Redis token tier is in use (1) or the sidecar runs on its in-process cache (0).', [{ labels: '', value: redisState === 'available' ? 1 : 0 }]);
        family(lines, 'baton_redis_faults_total', 'counter', 'Times the Redis token tier became unusable, by fault: unavailable, auth (wrong ACL user or password), noperm (ACL refused a command or key).', redisFaults.series());
      }
      family(lines, 'baton_token_cache_unsealable_total', 'counter', 'Redis entries that failed to open (another key, moved, tampered) and were treated as misses.', [{ labels: '', value: unsealable }]);
      family(lines, 'baton_inflight_requests', 'gauge', 'Requests in flight, by direction.', [...inflight.values()]);
      family(lines, 'baton_policy_version', 'gauge', 'Version of the call-graph policy in force (0: none yet).', [{ labels: '', value: policyVersion }]);
      family(lines, 'baton_policy_updates_total', 'counter', 'Verified call-graph policy versions taken into force.', [{ labels: '', value: policyUpdates }]);
      return lines.join('\n') + '\n';
    },
  };
}

interface RequestHandle extends RequestMetrics {
  series(): Array<{ labels: string; histogram: Histogram }>;
}

function requestHandle(labels: { direction: Direction; target: string }): RequestHandle {
  // Status, then reason: numbers and interned code strings as keys, nothing concatenated per request.
  const byStatus = new Map<number, Map<string, Histogram>>();
  return {
    done(status, reason, seconds) {
      let byReason = byStatus.get(status);
      if (byReason === undefined) byStatus.set(status, (byReason = new Map()));
      let histogram = byReason.get(reason);
      if (histogram === undefined) byReason.set(reason, (histogram = createHistogram(REQUEST_BUCKETS, { ...labels, code: String(status), reason })));
      histogram.observe(seconds);
    },
    series: () => [...byStatus.values()].flatMap((byReason) => [...byReason.values()].map((histogram) => ({ labels: histogram.labels, histogram }))),
  };
}

interface Histogram {
  /** The series' labels, formatted. */
  readonly labels: string;
  readonly count: number;
  observe(seconds: number): void;
  render(lines: string[], name: string): void;
}

/** One histogram series: a count per bucket (not cumulative: one increment per observation), summed up when rendered. */
function createHistogram(buckets: readonly number[], labels: Labels): Histogram {
  const counts = new Float64Array(buckets.length);
  const formatted = formatLabels(labels);
  // `le` goes last, after the series' own labels; built once.
  const bucketLabels = buckets.map((le) => formatLabels({ ...labels, le: String(le) }));
  const infLabels = formatLabels({ ...labels, le: '+Inf' });
  let sum = 0;
  let count = 0;
  return {
    labels: formatted,
    get count() {
      return count;
    },
    observe(seconds) {
      sum += seconds;
      count++;
      for (let i = 0; i < buckets.length; i++) {
        if (seconds <= (buckets[i] as number)) {
          counts[i] = (counts[i] as number) + 1;
          return;
        }
      }
    },
    render(lines, name) {
      let cumulative = 0;
      for (let i = 0; i < buckets.length; i++) {
        cumulative += counts[i] as number;
        lines.push(`${name}_bucket${bucketLabels[i]} ${cumulative}`);
      }
      lines.push(`${name}_bucket${infLabels} ${count}`, `${name}_sum${formatted} ${sum}`, `${name}_count${formatted} ${count}`);
    },
  };
}

/** A counter with two labels, found by the values themselves in two maps: nothing is concatenated per call. */
/** A counter with one label whose values are few (fault kinds, refusal codes); rare events, so a lookup per add is fine. */
function labelledCounter(label: string): { add(value: string): void; series(): Series[] } {
  const series = new Map<string, Series>();
  return {
    add(value) {
      let entry = series.get(value);
      if (entry === undefined) series.set(value, (entry = { labels: formatLabels({ [label]: value }), value: 0 }));
      entry.value++;
    },
    series: () => [...series.values()],
  };
}

function nestedCounter(first: string, second: string): { add(a: string, b: string): void; series(): Series[] } {
  const byFirst = new Map<string, Map<string, Series>>();
  return {
    add(a, b) {
      let bySecond = byFirst.get(a);
      if (bySecond === undefined) byFirst.set(a, (bySecond = new Map()));
      const series = bySecond.get(b);
      if (series === undefined) bySecond.set(b, { labels: formatLabels({ [first]: a, [second]: b }), value: 1 });
      else series.value++;
    },
    series: () => [...byFirst.values()].flatMap((bySecond) => [...bySecond.values()]),
  };
}

function family(lines: string[], name: string, type: 'counter' | 'gauge', help: string, series: readonly Series[]): void {
  lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  for (const s of series) lines.push(`${name}${s.labels} ${s.value}`);
}

function formatLabels(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`))}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}
