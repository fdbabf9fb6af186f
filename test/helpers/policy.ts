/**
 * Test call-graph policies, built one way: YAML parsed and compiled by the
 * real language (src/policy/language/), failing the test with the parser's
 * problems when the YAML is wrong. `callGraph` writes the boilerplate
 * around a `services:` block, so a test shows only the services it is about.
 */
import { compilePolicy } from '../../src/policy/language/compile.ts';
import type { CompiledPolicy } from '../../src/policy/language/decision.ts';
import { parsePolicy } from '../../src/policy/language/parse.ts';

/** Parses and compiles; throws with the parser's problems when the YAML is not a valid policy. */
export function compileTestPolicy(yaml: string, file = 'test.yaml'): CompiledPolicy {
  const { policy, problems } = parsePolicy(yaml, file);
  if (policy === undefined) throw new Error(`bad test policy: ${JSON.stringify(problems)}`);
  return compilePolicy(policy);
}

/**
 * A CallGraph document around `services`, the YAML under `spec.services`
 * (indented by the caller or not: each line is indented four spaces here).
 */
export function callGraph(
  services: string,
  options: { name?: string; maxDepth?: number; mode?: 'enforce' | 'shadow' } = {},
): string {
  const body = services
    .replace(/^\n+|\s+$/g, '')
    .split('\n')
    .map((line) => `    ${line}`)
    .join('\n');
  return [
    'apiVersion: baton.dev/v1alpha1',
    'kind: CallGraph',
    `metadata: { name: ${options.name ?? 'test'} }`,
    'spec:',
    ...(options.maxDepth === undefined ? [] : [`  maxDepth: ${options.maxDepth}`]),
    ...(options.mode === undefined ? [] : [`  mode: ${options.mode}`]),
    '  services:',
    body,
    '',
  ].join('\n');
}
