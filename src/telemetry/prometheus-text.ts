/**
 * The one Prometheus text registry (exposition format 0.0.4) behind the
 * sidecar's and the STS's `/metrics`: a few counters, gauges and histograms
 * do not need a metrics SDK on the hot path. Label values are escaped per
 * the format once, when a series is made; label sets must stay bounded
 * (rules, outcomes, never a user id). The process's own series come from
 * prom-client (runtime-metrics.ts), read at scrape time only.
 *
 * Series are handles: a caller resolves one once (per handler, per target,
 * per label value) and then only adds or observes, so a request costs a
 * small-map lookup or none, and no string building.
 */
export type Labels = Readonly<Record<string, string>>;

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Durations of a request answered by baton: a loopback hop takes well under a millisecond, an app or an upstream up to its timeout. */
export const DURATION_BUCKETS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

/** One counter or gauge series: its labels, formatted once, and its value. */
export interface Series {
  readonly labels: string;
  value: number;
}

export function series(labels: Labels = {}): Series {
  return { labels: formatLabels(labels), value: 0 };
}

/** A counter or gauge with one label whose values are few (fault kinds, refusal codes, directions). */
export interface LabelledSeries {
  /** The series for this value, made on first use: keep it to skip the lookup. */
  of(value: string): Series;
  add(value: string, delta?: number): void;
  series(): Series[];
}

export function labelledSeries(label: string): LabelledSeries {
  const byValue = new Map<string, Series>();
  const of = (value: string): Series => {
    let entry = byValue.get(value);
    if (entry === undefined) byValue.set(value, (entry = series({ [label]: value })));
    return entry;
  };
  return {
    of,
    add(value, delta = 1) {
      of(value).value += delta;
    },
    series: () => [...byValue.values()],
  };
}

/** A counter with two labels, found by the values themselves in two maps: nothing is concatenated per call. */
export interface NestedCounter {
  add(a: string, b: string): void;
  series(): Series[];
}

export function nestedCounter(first: string, second: string): NestedCounter {
  const byFirst = new Map<string, Map<string, Series>>();
  return {
    add(a, b) {
      let bySecond = byFirst.get(a);
      if (bySecond === undefined) byFirst.set(a, (bySecond = new Map()));
      const entry = bySecond.get(b);
      if (entry === undefined) bySecond.set(b, { labels: formatLabels({ [first]: a, [second]: b }), value: 1 });
      else entry.value++;
    },
    series: () => [...byFirst.values()].flatMap((bySecond) => [...bySecond.values()]),
  };
}

export interface Histogram {
  /** The series' labels, formatted. */
  readonly labels: string;
  readonly count: number;
  observe(value: number): void;
  render(lines: string[], name: string): void;
}

/** One histogram series: a count per bucket (not cumulative: one increment per observation), summed up when rendered. */
export function histogram(buckets: readonly number[], labels: Labels): Histogram {
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
    observe(value) {
      sum += value;
      count++;
      for (let i = 0; i < buckets.length; i++) {
        if (value <= (buckets[i] as number)) {
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
      lines.push(
        `${name}_bucket${infLabels} ${count}`,
        `${name}_sum${formatted} ${sum}`,
        `${name}_count${formatted} ${count}`,
      );
    },
  };
}

/** A histogram with one label, its series made on first use. */
export interface LabelledHistogram {
  of(value: string): Histogram;
  all(): Histogram[];
}

export function labelledHistogram(label: string, buckets: readonly number[]): LabelledHistogram {
  const byValue = new Map<string, Histogram>();
  return {
    of(value) {
      let entry = byValue.get(value);
      if (entry === undefined) byValue.set(value, (entry = histogram(buckets, { [label]: value })));
      return entry;
    },
    all: () => [...byValue.values()],
  };
}

/** A counter or gauge family: its HELP and TYPE lines, then one line per series. */
export function renderFamily(
  lines: string[],
  name: string,
  type: 'counter' | 'gauge',
  help: string,
  all: readonly Series[],
): void {
  lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  for (const s of all) lines.push(`${name}${s.labels} ${s.value}`);
}

export function renderHistogramFamily(lines: string[], name: string, help: string, all: readonly Histogram[]): void {
  lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
  for (const h of all) h.render(lines, name);
}

/** Label values escaped per the text format: backslash, double quote and line feed. */
export function formatLabels(labels: Labels): string {
  const parts = Object.entries(labels).map(
    ([k, v]) => `${k}="${v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`))}"`,
  );
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}
