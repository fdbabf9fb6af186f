/** A real pino logger whose lines a test reads back, parsed and raw (to prove a secret never appears). */
import type { Logger } from 'pino';
import { createLogger } from '../../src/telemetry/logger.ts';

export interface LogCapture {
  readonly lines: Array<Record<string, unknown>>;
  readonly raw: string[];
  readonly logger: Logger;
}

export function captureLogs(name: string): LogCapture {
  const lines: Array<Record<string, unknown>> = [];
  const raw: string[] = [];
  const logger = createLogger({
    name,
    level: 'debug',
    destination: {
      write(line: string) {
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  });
  return { lines, raw, logger };
}
