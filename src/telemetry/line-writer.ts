/**
 * The log's writer: lines in, whole batches out to one file descriptor
 * (stdout in a process), in the order they were written.
 *
 * Promises:
 * - A line costs an array push on the request path. Lines are joined and
 *   written in one write(2) when `batchBytes` have gathered, or `flushMs`
 *   after the first line of a batch when a process is quiet.
 * - No line is dropped and none is reordered. The batch is written
 *   synchronously on the event loop (a few microseconds for 16 KiB into a
 *   pipe or a file, shared by every line in it), so nothing is ever in
 *   flight on another thread: what the writer holds is exactly what has
 *   not been written, and `flushSync` writes all of it. The process's
 *   `exit` hook calls it (./logger.ts, for the one stdout writer), so a
 *   graceful shutdown (SIGTERM, a returned command, a thrown error) writes
 *   every line; only SIGKILL loses the unwritten batch, at most `flushMs`
 *   of lines.
 * - A reader that cannot keep up is waited for, not outrun: a full pipe
 *   (EAGAIN) is retried after a short sleep, so the writer holds at most
 *   one batch and memory stays bounded. The audit trail is not traded for
 *   memory growth.
 * - A closed reader (EPIPE) stops the writer: nothing more can be written
 *   and the process must not die of its log. Any other write error (a full
 *   disk) is thrown where the batch was written: from a line's `write`, to
 *   the code that logged; from the timer, to the process, as sonic-boom's
 *   unhandled `error` event was.
 *
 * Why not pino's sonic-boom: its `write` computes the UTF-8 length of the
 * string it is appending to on every call (flattening it), ≈ 10 µs per
 * audit line on a loaded sidecar (docs/performance.md, #28).
 */
import { writeSync } from 'node:fs';

export interface LineWriterOptions {
  readonly fd: number;
  /** Write when this many characters have gathered. */
  readonly batchBytes: number;
  /** Write what has gathered this long after a batch's first line. */
  readonly flushMs: number;
}

export interface LineWriter {
  write(line: string): boolean;
  /** Writes every held line now. */
  flushSync(): void;
  /** pino's `logger.flush(cb)`. */
  flush(callback?: (error?: Error) => void): void;
  /** Writes every held line and stops: later writes are ignored. */
  close(): void;
}

const EAGAIN_SLEEP_MS = 1;

export function createLineWriter(options: LineWriterOptions): LineWriter {
  let held: string[] = [];
  let heldChars = 0;
  let timer: NodeJS.Timeout | undefined;
  let state: 'open' | 'closed' = 'open';
  const sleeper = new Int32Array(new SharedArrayBuffer(4));

  /** The batch as one string: encoded by the write itself, no Buffer made, unless a write is short (then the rest, as bytes). */
  const writeAll = (text: string): void => {
    let data: Buffer | undefined;
    let offset = 0;
    for (;;) {
      try {
        if (data === undefined) {
          const written = writeSync(options.fd, text);
          // A whole write is the common case; once per batch, the byte count tells (a line may hold UTF-8 beyond ASCII).
          if (written === Buffer.byteLength(text)) return;
          data = Buffer.from(text);
          offset = written;
        } else {
          offset += writeSync(options.fd, data, offset, data.length - offset);
        }
        if (data.length === offset) return;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') {
          Atomics.wait(sleeper, 0, 0, EAGAIN_SLEEP_MS);
          continue;
        }
        if (code === 'EPIPE') {
          state = 'closed';
          return;
        }
        throw error;
      }
    }
  };

  const flushSync = (): void => {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    if (held.length === 0 || state === 'closed') return;
    const text = held.join('');
    held = [];
    heldChars = 0;
    writeAll(text);
  };

  const writer: LineWriter = {
    write(line) {
      if (state === 'closed') return false;
      held.push(line);
      heldChars += line.length;
      if (heldChars >= options.batchBytes) flushSync();
      // unref'd: a quiet process may exit with lines held; the exit hook writes them.
      else if (timer === undefined) timer = setTimeout(flushSync, options.flushMs).unref();
      return true;
    },
    flushSync,
    flush(callback) {
      try {
        flushSync();
        callback?.();
      } catch (error) {
        if (callback === undefined) throw error;
        callback(error as Error);
      }
    },
    close() {
      flushSync();
      state = 'closed';
    },
  };
  return writer;
}
