/**
 * A small Prometheus text-format registry for the admin port's `/metrics`.
 * Names follow Prometheus conventions (`baton_` prefix, `_total` counters,
 * `_seconds` durations); labels are bounded sets (directions, outcomes,
 * rule ids) and never a user id.
 */

type Labels = Readonly<Record<string, string>>;

interface Series {
  readonly labels: string;
  value: number;
}

const DEFAULT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export interface SidecarMetrics {
  request(direction: Direction, outcome: string): void;
  decision(rule: string, decision: 'allow' | 'deny' | 'would_deny'): void;
  /** A shadow-mode denial let through: what enforcing the rule would break. */
  shadowDenial(target: string, rule: string): void;
  exchangeDuration(seconds: number): void;
  tokenCache(result: string): void;
  /** The shared Redis tier: a value that would not open, or a change of state (once per change, not per request). */
  redisTier(event: 'unsealable' | 'available' | 'unavailable' | 'auth' | 'noperm'): void;
  policyVersion(version: number): void;
  /** An inbound token refused for its certificate binding (RFC 8705 §3), by code. */
  bindingRefusal(code: string): void;
  inflight(direction: Direction, delta: 1 | -1): void;
  render(): string;
}

export type Direction = 'inbound' | 'outbound';

export function createSidecarMetrics(): SidecarMetrics {
  const requests = counter();
  const decisions = counter();
  const shadowDenials = counter();
  const cache = counter();
  const redisFaults = counter();
  let unsealable = 0;
  let redisState: string | undefined;
  const inflight = counter();
  const bindingRefusals = counter();
  let policyVersion = 0;
  let policyUpdates = 0;
  const buckets = DEFAULT_BUCKETS.map(() => 0);
  let exchangeSum = 0;
  let exchangeCount = 0;

  return {
    request: (direction, outcome) => requests.add({ direction, outcome }, 1),
    decision: (rule, decision) => decisions.add({ rule, decision }, 1),
    shadowDenial: (target, rule) => shadowDenials.add({ target, rule }, 1),
    tokenCache: (result) => cache.add({ result }, 1),
    redisTier(event) {
      if (event === 'unsealable') unsealable++;
      else {
        redisState = event;
        if (event !== 'available') redisFaults.add({ fault: event }, 1);
      }
    },
    inflight: (direction, delta) => inflight.add({ direction }, delta),
    bindingRefusal: (code) => bindingRefusals.add({ code }, 1),
    policyVersion(version) {
      if (version !== policyVersion) policyUpdates++;
      policyVersion = version;
    },
    exchangeDuration(seconds) {
      exchangeSum += seconds;
      exchangeCount++;
      for (let i = 0; i < DEFAULT_BUCKETS.length; i++) if (seconds <= (DEFAULT_BUCKETS[i] as number)) buckets[i] = (buckets[i] as number) + 1;
    },
    render() {
      const lines: string[] = [];
      family(lines, 'baton_requests_total', 'counter', 'Requests handled, by direction and outcome.', requests.series());
      family(lines, 'baton_decisions_total', 'counter', 'Call-graph policy decisions, by rule and decision.', decisions.series());
      family(lines, 'baton_shadow_denials_total', 'counter', 'Calls a shadow-mode rule would have denied and let through, by target and rule.', shadowDenials.series());
      family(lines, 'baton_token_cache_requests_total', 'counter', 'Exchanged-token cache lookups, by result.', cache.series());
      family(lines, 'baton_token_binding_refusals_total', 'counter', 'Inbound tokens refused for their certificate binding (RFC 8705), by code.', bindingRefusals.series());
      if (redisState !== undefined) {
        family(lines, 'baton_redis_available', 'gauge', 'Whether the shared Redis token tier is in use (1) or the sidecar runs on its in-process cache (0).', [{ labels: '', value: redisState === 'available' ? 1 : 0 }]);
        family(lines, 'baton_redis_faults_total', 'counter', 'Times the Redis token tier became unusable, by fault: unavailable, auth (wrong ACL user or password), noperm (ACL refused a command or key).', redisFaults.series());
      }
      family(lines, 'baton_token_cache_unsealable_total', 'counter', 'Redis entries that failed to open (another key, moved, tampered) and were treated as misses.', [{ labels: '', value: unsealable }]);
      family(lines, 'baton_inflight_requests', 'gauge', 'Requests in flight, by direction.', inflight.series());
      family(lines, 'baton_policy_version', 'gauge', 'Version of the call-graph policy in force (0: none yet).', [{ labels: '', value: policyVersion }]);
      family(lines, 'baton_policy_updates_total', 'counter', 'Verified call-graph policy versions taken into force.', [{ labels: '', value: policyUpdates }]);
      lines.push('# HELP baton_exchange_duration_seconds Time to obtain an exchanged token, cache hits included.', '# TYPE baton_exchange_duration_seconds histogram');
      DEFAULT_BUCKETS.forEach((le, i) => lines.push(`baton_exchange_duration_seconds_bucket{le="${le}"} ${buckets[i]}`));
      lines.push(`baton_exchange_duration_seconds_bucket{le="+Inf"} ${exchangeCount}`, `baton_exchange_duration_seconds_sum ${exchangeSum}`, `baton_exchange_duration_seconds_count ${exchangeCount}`);
      return lines.join('\n') + '\n';
    },
  };
}

function counter(): { add(labels: Labels, delta: number): void; series(): Series[] } {
  const byKey = new Map<string, Series>();
  return {
    add(labels, delta) {
      // Called on every request: a plain concatenation finds the series; the escaped label text is built once per series.
      let key = '';
      for (const name in labels) key += `${name}\u0000${labels[name]}\u0000`;
      const series = byKey.get(key);
      if (series === undefined) byKey.set(key, { labels: formatLabels(labels), value: delta });
      else series.value += delta;
    },
    series: () => [...byKey.values()],
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
