/**
 * The leak check: every test file's process is loaded with this module
 * (`node --test --import ./test/helpers/leak-check.ts`, package.json), and
 * after the file's last test and last `after` hook it must hold nothing open
 * that it did not hold before the file ran (`process.getActiveResourcesInfo()`:
 * ref'd sockets, servers, child processes, timers, pending requests).
 *
 * Why: a test that forgets a handle keeps its file's process alive after the
 * last test, and the runner waits for it forever (`--test-timeout` times
 * tests, not files). The suite used to paper over that with
 * `--test-force-exit`, which also cut off whatever the file had not reported
 * yet (a `describe` went missing from a CI report that way). Here a leak is a
 * failure of the file that names each resource: its kind, and for sockets,
 * servers, processes and timers the detail that finds its owner. Set
 * `BATON_LEAK_STACKS=1` to also print where each was created (async_hooks;
 * slower, for chasing one).
 *
 * A file that leaks still has to end, or the run would hang on it: after the
 * failure is reported, the process exits with a failing code. That exit only
 * ever follows a reported failure; a clean file ends on its own.
 *
 * Resources closing in the background (a socket's close callback one tick
 * away) are given GRACE_MS to go before they count.
 */
import { AsyncResource, createHook } from 'node:async_hooks';
import { relative } from 'node:path';
import { after } from 'node:test';

const GRACE_MS = 2_000;
/** Time for the runner to send the failure to the parent before a leaking process is ended. */
const REPORT_MS = 3_000;

const baseline = process.getActiveResourcesInfo();
const tracked = process.env.BATON_LEAK_STACKS === '1' ? trackCreation() : undefined;

// The check must be the root's last `after` hook, after those the test file
// registers while it loads. Hooks run in the order they were registered, and
// the runner reads the list afresh after each one: this module's hook, the
// first in the list, appends the check to its end. (Registering it later from
// a root `before` would not do: that runs at once, before the file loads.)
// `after` is called from this module's own async scope, which the runner maps
// to the root; from inside a hook it would attach to that hook.
const outside = new AsyncResource('baton-leak-check');
after(() => {
  outside.runInAsyncScope(() => after(checkNothingLeft));
});

async function checkNothingLeft(): Promise<void> {
  const deadline = Date.now() + GRACE_MS;
  let leaked = leftOver();
  while (leaked.length > 0 && Date.now() < deadline) {
    // Unref'd: while something is left over, that something keeps the loop alive.
    await new Promise((resolve) => setTimeout(resolve, 25).unref());
    leaked = leftOver();
  }
  if (leaked.length === 0) return;
  setTimeout(() => process.exit(1), REPORT_MS).unref();
  throw new Error(
    `expected ${testFile()} to leave nothing open, got ${leaked.length} resource${leaked.length === 1 ? '' : 's'} still open after its last test: ${[count(leaked), ...describeHandles()].join('\n')}`,
  );
}

function testFile(): string {
  const file = process.argv[1];
  return file === undefined ? 'the test file' : relative(process.cwd(), file);
}

/** What is open now and was not before the file ran (a multiset difference). */
function leftOver(): string[] {
  const before = [...baseline];
  const left: string[] = [];
  for (const kind of process.getActiveResourcesInfo()) {
    const i = before.indexOf(kind);
    if (i === -1) left.push(kind);
    else before.splice(i, 1);
  }
  return left;
}

function count(kinds: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const kind of kinds) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  return [...counts].map(([kind, n]) => (n === 1 ? kind : `${kind} ×${n}`)).join(', ');
}

interface HandleLike {
  readonly constructor?: { readonly name?: string };
  hasRef?(): boolean;
  address?(): unknown;
  readonly _handle?: unknown;
  readonly _destroyed?: boolean;
  readonly localAddress?: string;
  readonly localPort?: number;
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  readonly pid?: number;
  readonly spawnargs?: readonly string[];
  readonly _idleTimeout?: number;
  readonly _repeat?: number | null;
  readonly _onTimeout?: { readonly name?: string };
}

/**
 * One line per open handle that keeps the loop alive, with what identifies it.
 * `process._getActiveHandles()` is undocumented: used for the detail only,
 * never for the verdict, which is getActiveResourcesInfo's. Timers are not
 * handles; they are listed only when BATON_LEAK_STACKS=1 tracks them.
 */
function describeHandles(): string[] {
  const stdio = new Set<unknown>([process.stdin, process.stdout, process.stderr]);
  const active = (process as unknown as { _getActiveHandles?: () => HandleLike[] })._getActiveHandles?.() ?? [];
  const timers =
    tracked === undefined ? [] : [...tracked.timers].filter((t) => t._destroyed !== true && t.hasRef?.() !== false);
  const lines: string[] = [];
  for (const handle of [...active, ...timers]) {
    if (stdio.has(handle) || handle.hasRef?.() === false) continue;
    lines.push(`  - ${describeHandle(handle)}${creation(handle)}`);
  }
  if (tracked === undefined && lines.length > 0)
    lines.push('  (BATON_LEAK_STACKS=1 also lists timers and prints where each resource was created)');
  return lines;
}

function describeHandle(handle: HandleLike): string {
  const name = handle.constructor?.name ?? 'handle';
  if (typeof handle.pid === 'number')
    return `${name} (pid ${handle.pid}: ${(handle.spawnargs ?? []).join(' ').slice(0, 200)})`;
  if (typeof handle._idleTimeout === 'number')
    return `${handle._repeat ? 'setInterval' : 'setTimeout'} (${handle._idleTimeout} ms, callback ${handle._onTimeout?.name || '(anonymous)'})`;
  if (handle.remotePort !== undefined)
    return `${name} (${handle.localAddress}:${handle.localPort} → ${handle.remoteAddress}:${handle.remotePort})`;
  if (typeof handle.address === 'function') return `${name} (listening on ${JSON.stringify(handle.address())})`;
  return name;
}

function creation(handle: HandleLike): string {
  const stack =
    tracked?.stacks.get(handle as object) ??
    (typeof handle._handle === 'object' && handle._handle !== null ? tracked?.stacks.get(handle._handle) : undefined);
  return stack === undefined ? '' : `, created\n${stack}`;
}

function trackCreation(): { stacks: WeakMap<object, string>; timers: Set<HandleLike> } {
  const stacks = new WeakMap<object, string>();
  const timers = new Set<HandleLike>();
  const byId = new Map<number, HandleLike>();
  createHook({
    init(id, type, _trigger, resource) {
      if (type === 'PROMISE') return;
      const holder: { stack?: string } = {};
      Error.captureStackTrace(holder);
      const frames = (holder.stack ?? '')
        .split('\n')
        .slice(1)
        .filter((l) => !l.includes('node:internal/async_hooks'));
      stacks.set(
        resource as object,
        frames
          .slice(0, 12)
          .map((l) => `      ${l.trim()}`)
          .join('\n'),
      );
      if (type === 'Timeout') {
        timers.add(resource as HandleLike);
        byId.set(id, resource as HandleLike);
      }
    },
    destroy(id) {
      const timer = byId.get(id);
      if (timer === undefined) return;
      byId.delete(id);
      timers.delete(timer);
    },
  }).enable();
  return { stacks, timers };
}
