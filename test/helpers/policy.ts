/**
 * Test call-graph policies, built one way: YAML parsed and compiled by the
 * real language (src/policy/language/), failing the test with the parser's
 * problems when the YAML is wrong. `callGraph` writes the boilerplate
 * around a `services:` block, so a test shows only the services it is about.
 */
import assert from 'node:assert/strict';
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

/**
 * Asserts that `text`, parsed as p.yaml, has a problem `code` at `line`:`column`
 * with `severity`; an error leaves no policy, a warning alone leaves a usable one.
 */
export function expectProblem(
  text: string,
  code: string,
  line: number,
  column: number,
  severity: 'error' | 'warning' = 'error',
): void {
  const { policy, problems } = parsePolicy(text, 'p.yaml');
  const found = problems.find((p) => p.code === code);
  assert.ok(
    found,
    `expected ${code}, got ${JSON.stringify(problems.map((p) => `${p.code}@${p.location.line}:${p.location.column}`))}`,
  );
  assert.deepEqual(
    { line: found.location.line, column: found.location.column, file: found.location.file, severity: found.severity },
    { line, column, file: 'p.yaml', severity },
  );
  if (severity === 'error') assert.equal(policy, undefined, 'an error makes the policy unusable');
  else if (!problems.some((p) => p.severity === 'error')) assert.ok(policy, 'a warning leaves the policy usable');
}
