/**
 * Whether the sidecar is ready, decided once and read by every request: one
 * boolean (./pipeline.ts step 3), refreshed every READINESS_REFRESH_MS, on
 * each policy update and on each /readyz probe, so a probe and the requests
 * after it agree. Ready means: not shutting down, collaborators built and
 * waiting for nothing (policy, keys, STS), and in mtls mode a certificate
 * held. A problem that keeps the sidecar unready is announced once when it
 * appears and once when it goes away: loud, not repeated every second.
 */
import type { Logger } from 'pino';
import type { Collaborators } from './collaborators.ts';
import type { SidecarMesh } from './wiring.ts';

// How often readiness problems are looked for: they come from policy reloads, which are seconds apart.
const PROBLEM_CHECK_MS = 1_000;
// How stale the readiness every request reads may be (a key source going stale, a certificate expiring).
const READINESS_REFRESH_MS = 250;

export interface ReadinessOptions {
  /** The part as its announcements name it: `sidecar`, or `authz` (src/authz/authz.ts decides the same way). */
  readonly part: string;
  readonly service: string;
  readonly logger: Logger;
  readonly mesh: SidecarMesh | undefined;
  /** The collaborators once built; undefined during startup. */
  readonly collaborators: () => Collaborators | undefined;
  readonly closing: () => boolean;
  /** Where a problem is announced as one plain line (the CLI: stderr), besides the log. */
  readonly announce?: ((line: string) => void) | undefined;
  /** Told the policy version at start and on each update (the `baton_policy_version` gauge). */
  readonly policyVersion: (version: number) => void;
}

export interface Readiness {
  /** The one value requests read. */
  readonly state: { ready: boolean };
  /** Decides again, and returns the answer. */
  refresh(): boolean;
  /** What readiness waits for: `startup`, the collaborators' causes, `identity`; only `shutdown` once closing. */
  waitingFor(): string[];
  /** Why the sidecar cannot become ready by waiting, each as one line; none once closing. */
  problems(): string[];
  /** Follows the collaborators' policy (each update refreshes readiness), then starts the refresh and the announcements. */
  start(): void;
  /** Decides once more (closing: not ready) and stops the refresh and the announcements. */
  stop(): void;
}

export function createReadiness(options: ReadinessOptions): Readiness {
  const { logger, mesh, collaborators } = options;
  // mtls: without a valid certificate nothing can be sent or received, so readiness waits for it too.
  const identityMissing = (): boolean => mesh !== undefined && mesh.identity.current() === undefined;
  const waitingFor = (): string[] =>
    options.closing()
      ? ['shutdown']
      : [...(collaborators()?.waitingFor() ?? ['startup']), ...(identityMissing() ? ['identity'] : [])];
  // Without a usable certificate neither the policy server nor the STS can be reached: the certificate is the cause to name, not what follows from it.
  const problems = (): string[] => {
    // Shutting down is not a problem to fix.
    if (options.closing()) return [];
    const identity = identityMissing() ? mesh?.identity.status().problem : undefined;
    return identity !== undefined ? [identity] : (collaborators()?.problems?.() ?? []);
  };
  const state = { ready: false };
  const refresh = (): boolean => {
    const c = collaborators();
    return (state.ready = !options.closing() && c !== undefined && c.waitingFor().length === 0 && !identityMissing());
  };
  let announced: readonly string[] = [];
  const announceProblems = (): void => {
    const seen = problems();
    for (const problem of seen.filter((p) => !announced.includes(p))) {
      logger.error({ event: 'not_ready', reason: problem }, 'not ready');
      options.announce?.(`baton ${options.part} ${options.service}: NOT READY: ${problem}`);
    }
    // Each problem that went away, once; the last one says whether that made the sidecar ready.
    for (const gone of announced.filter((p) => !seen.includes(p))) {
      logger.info({ event: 'problem_resolved', reason: gone }, 'readiness problem resolved');
      options.announce?.(
        `baton ${options.part} ${options.service}: problem resolved (${gone.split(/[:.;]/, 1)[0]})${refresh() ? '; ready' : `; still waiting for ${waitingFor().join(', ')}`}`,
      );
    }
    announced = seen;
  };
  const timers: NodeJS.Timeout[] = [];
  return {
    state,
    refresh,
    waitingFor,
    problems,
    start() {
      const policy = collaborators()?.policy;
      policy?.onUpdate?.((_policy, version) => {
        // The policy source logs the update, once (policy/distribution/source.ts).
        options.policyVersion(version);
        refresh();
      });
      refresh();
      const version = policy?.version();
      if (version !== undefined) options.policyVersion(version);
      for (const [tick, ms] of [
        [refresh, READINESS_REFRESH_MS],
        [announceProblems, PROBLEM_CHECK_MS],
      ] as const) {
        const timer = setInterval(tick, ms);
        timer.unref();
        timers.push(timer);
      }
    },
    stop() {
      refresh();
      for (const timer of timers) clearInterval(timer);
    },
  };
}
