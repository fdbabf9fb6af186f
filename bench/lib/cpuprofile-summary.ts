/**
 * Reads a V8 CPU profile (`--cpu-prof`, or BENCH_PROFILE=<dir> in bench/grpc.bench.ts) and prints where the time
 * went: the functions with the most self time, and the most inclusive time, as shares of all samples and of the
 * busy ones (idle and GC apart), so two profiles of different lengths compare.
 * Run: node bench/lib/cpuprofile-summary.ts <file.cpuprofile> [how many rows, 30]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, rows = '30'] = process.argv.slice(2);
if (file === undefined) throw new Error('expected a .cpuprofile file as the first argument, got none');
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const where = (n: ProfileNode): string => {
  const { functionName, url, lineNumber } = n.callFrame;
  const short = url.replace(/^.*\/(node_modules\/)?/, '');
  return `${functionName || '(anonymous)'} ${short === '' ? '' : `${short}:${lineNumber + 1}`}`.trim();
};

const self = new Map<string, number>();
const inclusive = new Map<string, number>();
let total = 0;
let idle = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const us = profile.timeDeltas[i] ?? 0;
  const node = byId.get(profile.samples[i] as number) as ProfileNode;
  total += us;
  const name = where(node);
  if (name === '(idle)') idle += us;
  self.set(name, (self.get(name) ?? 0) + us);
  // Each function once per sample, however deep it recurses.
  const seen = new Set<string>();
  for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
    const frame = where(byId.get(id) as ProfileNode);
    if (seen.has(frame)) continue;
    seen.add(frame);
    inclusive.set(frame, (inclusive.get(frame) ?? 0) + us);
  }
}
const busy = total - idle;
const pct = (us: number, of: number): string => `${((us / of) * 100).toFixed(1)}%`.padStart(6);
const top = (m: Map<string, number>): [string, number][] => [...m].sort((a, b) => b[1] - a[1]).slice(0, Number(rows));
console.log(
  `${file}: ${(total / 1e6).toFixed(2)} s sampled, ${(busy / 1e6).toFixed(2)} s busy (${pct(busy, total).trim()})`,
);
console.log('\nself time: % of busy, % of all, function');
for (const [name, us] of top(self)) if (name !== '(idle)') console.log(`${pct(us, busy)} ${pct(us, total)}  ${name}`);
console.log('\ninclusive time: % of busy, function');
for (const [name, us] of top(inclusive))
  if (name !== '(idle)' && name !== '(root)') console.log(`${pct(us, busy)}  ${name}`);
