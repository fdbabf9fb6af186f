/** CPU time and resident memory of a process, from /proc (Linux). */
import { readFileSync } from 'node:fs';

const CLOCK_TICKS = 100; // USER_HZ on Linux

export interface ProcSample {
  /** User + system CPU seconds so far. */
  readonly cpuSeconds: number;
  readonly rssBytes: number;
  /**
   * The anonymous part of RSS: heap, stacks, buffers, this process's own.
   * The rest is file-backed, mostly the node binary's pages, shared through
   * the page cache by every process that runs the same binary.
   */
  readonly anonBytes: number;
}

export function sampleProcess(pid: number): ProcSample {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which may contain spaces, in parentheses.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024;
  return { cpuSeconds: (utime + stime) / CLOCK_TICKS, rssBytes: kb('VmRSS'), anonBytes: kb('RssAnon') };
}

/** Sums samples over several processes (nginx master + workers). */
export function sampleProcesses(pids: readonly number[]): ProcSample {
  let cpuSeconds = 0;
  let rssBytes = 0;
  let anonBytes = 0;
  for (const pid of pids) {
    try {
      const s = sampleProcess(pid);
      cpuSeconds += s.cpuSeconds;
      rssBytes += s.rssBytes;
      anonBytes += s.anonBytes;
    } catch {
      // a worker that exited between listing and reading
    }
  }
  return { cpuSeconds, rssBytes, anonBytes };
}

export function childPids(pid: number): number[] {
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return children === '' ? [] : children.split(' ').map(Number);
  } catch {
    return [];
  }
}
