/**
 * The Prometheus text exposition format (0.0.4), by hand: a few counters, a
 * gauge and a histogram do not need a metrics SDK on the hot path. Label
 * values are escaped per the format; label sets must stay bounded (rules,
 * outcomes, never a user id).
 */
export type Labels = Readonly<Record<string, string>>;

export interface CounterFamily {
  add(labels: Labels, delta?: number): void;
  render(lines: string[]): void;
}

export function counterFamily(name: string, help: string, type: 'counter' | 'gauge' = 'counter'): CounterFamily {
  const byKey = new Map<string, { labels: string; value: number }>();
  return {
    add(labels, delta = 1) {
      const key = formatLabels(labels);
      const series = byKey.get(key);
      if (series === undefined) byKey.set(key, { labels: key, value: delta });
      else series.value += delta;
    },
    render(lines) {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const s of byKey.values()) lines.push(`${name}${s.labels} ${s.value}`);
    },
  };
}

export interface HistogramFamily {
  observe(labels: Labels, value: number): void;
  render(lines: string[]): void;
}

export const LATENCY_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export function histogramFamily(name: string, help: string, buckets: readonly number[] = LATENCY_BUCKETS): HistogramFamily {
  const byKey = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  return {
    observe(labels, value) {
      const key = formatLabels(labels);
      let series = byKey.get(key);
      if (series === undefined) byKey.set(key, (series = { labels, counts: buckets.map(() => 0), sum: 0, count: 0 }));
      series.sum += value;
      series.count++;
      for (let i = 0; i < buckets.length; i++) if (value <= (buckets[i] as number)) series.counts[i] = (series.counts[i] as number) + 1;
    },
    render(lines) {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
      for (const s of byKey.values()) {
        buckets.forEach((le, i) => lines.push(`${name}_bucket${formatLabels({ ...s.labels, le: String(le) })} ${s.counts[i]}`));
        lines.push(`${name}_bucket${formatLabels({ ...s.labels, le: '+Inf' })} ${s.count}`, `${name}_sum${formatLabels(s.labels)} ${s.sum}`, `${name}_count${formatLabels(s.labels)} ${s.count}`);
      }
    },
  };
}

export function formatLabels(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`))}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
