/**
 * Scenario 4: policy load and decision throughput on generated graphs of
 * 100 and 10,000 services. Run alone with node_modules/.bin/node
 * bench/policy.bench.ts, or by bench/run.ts. Writes bench/results/policy.json and .md.
 */
import { compilePolicy } from '../src/policy/language/compile.ts';
import type { DecisionInput } from '../src/policy/language/decision.ts';
import { parsePolicy, policyFromJSON, policyToJSON } from '../src/policy/language/parse.ts';
import { writeResults } from './lib/report.ts';
import type { BenchOptions, ScenarioResult } from './lib/scenario.ts';

const FANOUT = 10;
const ENTRYPOINTS = 10;

/** A tree: svc-0..9 are entrypoints, svc-i accepts svc-floor(i/10); every rule has methods, paths and a scope expression. */
function generateYaml(count: number): string {
  const lines = [
    'apiVersion: baton.dev/v1alpha1',
    'kind: CallGraph',
    'metadata: { name: bench }',
    'spec:',
    '  maxDepth: 8',
    '  services:',
  ];
  for (let i = 0; i < count; i++) {
    lines.push(`    svc-${i}:`);
    if (i < ENTRYPOINTS) {
      lines.push('      entrypoint: true');
      continue;
    }
    lines.push(
      '      accepts:',
      `        - from: svc-${Math.floor(i / FANOUT)}`,
      '          methods: [GET, POST]',
      '          paths: ["/api/*", "/v1/**"]',
      `          scopes: "s${i % 50} or (admin and not readonly)"`,
    );
  }
  return lines.join('\n') + '\n';
}

/** The chain from an entrypoint down to service i, origin first. */
function chainTo(i: number): string[] {
  const chain: string[] = [];
  for (let node = Math.floor(i / FANOUT); ; node = Math.floor(node / FANOUT)) {
    chain.unshift(`svc-${node}`);
    if (node < ENTRYPOINTS) break;
  }
  return chain;
}

function time<T>(fn: () => T): { value: T; ms: number } {
  const started = performance.now();
  const value = fn();
  return { value, ms: performance.now() - started };
}

interface PolicyRow {
  [column: string]: number;
  services: number;
  yamlBytes: number;
  parseMs: number;
  compileMs: number;
  jsonLoadMs: number;
  decisionsPerSecond: number;
  usableScopesFirstCallMs: number;
}

function measure(count: number, iterations: number): PolicyRow {
  const yaml = generateYaml(count);
  const parsed = time(() => parsePolicy(yaml, 'bench.yaml'));
  const policy = parsed.value.policy;
  if (policy === undefined) throw new Error(JSON.stringify(parsed.value.problems.slice(0, 3)));
  const compiled = time(() => compilePolicy(policy));
  const json: unknown = JSON.parse(JSON.stringify(policyToJSON(policy)));
  const jsonLoad = time(() => compilePolicy(policyFromJSON(json)));

  const inputs: DecisionInput[] = [];
  for (let k = 0; k < 1000; k++) {
    const target = ENTRYPOINTS + ((k * 7919) % (count - ENTRYPOINTS));
    inputs.push({
      chain: chainTo(target),
      target: `svc-${target}`,
      method: k % 3 === 0 ? 'DELETE' : 'GET',
      path: k % 5 === 0 ? '/api/a/b' : '/api/x',
      scopes: new Set([`s${target % 50}`]),
      user: true,
    });
  }
  const decide = compiled.value.decide;
  for (let k = 0; k < 20_000; k++) decide(inputs[k % inputs.length] as DecisionInput);
  let allowed = 0;
  const started = performance.now();
  for (let k = 0; k < iterations; k++) if (decide(inputs[k % inputs.length] as DecisionInput).allowed) allowed++;
  const seconds = (performance.now() - started) / 1000;
  if (allowed === 0) throw new Error('the benchmark inputs should include allowed decisions');
  const usable = time(() => compiled.value.usableScopes('svc-0', 'svc-10'));
  return {
    services: count,
    yamlBytes: yaml.length,
    parseMs: round(parsed.ms),
    compileMs: round(compiled.ms),
    jsonLoadMs: round(jsonLoad.ms),
    decisionsPerSecond: Math.round(iterations / seconds),
    usableScopesFirstCallMs: round(usable.ms),
  };
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

export async function run(options: BenchOptions): Promise<ScenarioResult> {
  const iterations = options.quick ? 50_000 : 500_000;
  const rows = options.quick ? [measure(100, iterations)] : [measure(100, iterations), measure(10_000, iterations)];
  const title = 'Scenario 4 — policy load time and decisions per second';
  const markdown = writeResults('policy', title, rows, { iterations });
  return { name: 'policy', title, rows, checks: [], markdown };
}

if (import.meta.main) console.log((await run({ quick: process.env.BENCH_QUICK === '1' })).markdown);
