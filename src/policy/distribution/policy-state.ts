/**
 * The newest policy document a part has accepted, kept in a small JSON file
 * so that a restart does not reopen the door to older signed documents
 * (issue #16, "Policy replay"). Written atomically (temp file + rename) on
 * every accepted version or re-issue; read once at start. An unreadable or
 * malformed file is logged and ignored: the maximum age still bounds what
 * is accepted.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';

export interface PolicyState {
  readonly version: number;
  readonly digest: string;
  /** Epoch seconds. */
  readonly issuedAt: number;
}

export interface PolicyStateFile {
  read(): PolicyState | undefined;
  write(state: PolicyState): void;
}

export function createPolicyStateFile(path: string, logger: Logger): PolicyStateFile {
  return {
    read() {
      let text: string;
      try {
        text = readFileSync(path, 'utf8');
      } catch (error) {
        if ((error as { code?: unknown }).code !== 'ENOENT')
          logger.warn(
            { event: 'policy_state_unreadable', path, code: (error as { code?: unknown }).code },
            'policy state file unreadable; starting without it',
          );
        return undefined;
      }
      try {
        const { version, digest, issuedAt } = JSON.parse(text) as Record<string, unknown>;
        if (
          typeof version === 'number' &&
          Number.isSafeInteger(version) &&
          typeof digest === 'string' &&
          typeof issuedAt === 'number'
        )
          return { version, digest, issuedAt };
      } catch {
        // fall through
      }
      logger.warn({ event: 'policy_state_malformed', path }, 'policy state file malformed; starting without it');
      return undefined;
    },
    write(state) {
      try {
        mkdirSync(dirname(path), { recursive: true });
        const temporary = `${path}.${process.pid}.tmp`;
        writeFileSync(temporary, `${JSON.stringify(state)}\n`, { mode: 0o600 });
        renameSync(temporary, path);
      } catch (error) {
        // Losing the state costs only the restart protection; the policy itself is fine.
        logger.warn(
          { event: 'policy_state_unwritable', path, code: (error as { code?: unknown }).code },
          'policy state file not written',
        );
      }
    },
  };
}
