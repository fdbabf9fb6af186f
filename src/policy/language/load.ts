/**
 * Loading a policy from disk, for the CLI, the policy server and sidecars
 * run with a local policy file: read, parse, validate, compile — or throw
 * `PolicyInvalidError` with every located problem.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { compilePolicy } from './compile.ts';
import type { CompiledPolicy } from './decision.ts';
import { PolicyInvalidError } from './errors.ts';
import type { CallGraphPolicy, PolicyProblem } from './model.ts';
import { parsePolicy } from './parse.ts';

export interface LoadedPolicy {
  readonly compiled: CompiledPolicy;
  readonly policy: CallGraphPolicy;
  readonly warnings: PolicyProblem[];
}

const POLICY_FILE = /\.ya?ml$/i;

export function loadPolicyFile(path: string): LoadedPolicy {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new PolicyInvalidError([
      unreadable(path, `cannot read the policy file: ${(error as NodeJS.ErrnoException).code ?? 'unknown error'}`),
    ]);
  }
  const { policy, problems } = parsePolicy(text, path);
  if (policy === undefined) throw new PolicyInvalidError(problems);
  return { compiled: compilePolicy(policy), policy, warnings: problems };
}

/** A policy file, or a directory holding exactly one `*.yaml`/`*.yml` CallGraph (a ConfigMap mount). */
export function loadPolicyPath(fileOrDir: string): LoadedPolicy {
  return loadPolicyFile(resolvePolicyPath(fileOrDir));
}

export function resolvePolicyPath(fileOrDir: string): string {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(fileOrDir).isDirectory();
  } catch (error) {
    throw new PolicyInvalidError([
      unreadable(fileOrDir, `cannot read the policy path: ${(error as NodeJS.ErrnoException).code ?? 'unknown error'}`),
    ]);
  }
  if (!isDirectory) return fileOrDir;
  // Kubernetes ConfigMap mounts add dot-prefixed bookkeeping entries (..data): skip them.
  const candidates = readdirSync(fileOrDir)
    .filter((name) => POLICY_FILE.test(name) && !name.startsWith('.'))
    .sort();
  if (candidates.length !== 1) {
    throw new PolicyInvalidError([
      unreadable(
        fileOrDir,
        `expected exactly one *.yaml or *.yml policy file in the directory, got ${candidates.length === 0 ? 'none' : candidates.join(', ')}`,
      ),
    ]);
  }
  return join(fileOrDir, candidates[0] as string);
}

function unreadable(file: string, message: string): PolicyProblem {
  return { code: 'POLICY_UNREADABLE', message, severity: 'error', location: { file, line: 1, column: 1 } };
}
