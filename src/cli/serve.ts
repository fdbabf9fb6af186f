/**
 * The life of a long-running part started from the CLI (`baton sidecar`,
 * `baton authz`): start it, or close it and stop telemetry when it cannot
 * open its ports; log where it listens; on SIGTERM or SIGINT drain it
 * within its grace period, flush spans (DESIGN "SIGTERM"), log that it
 * stopped, and exit 0.
 */
import type { Logger } from 'pino';
import type { Telemetry } from '../telemetry/tracing.ts';

export interface ServedPart<Ports> {
  start(): Promise<Ports>;
  /** Drains within the configured grace period, or within `graceMs` when given. */
  close(graceMs?: number): Promise<void>;
}

export async function serveUntilSignal<Ports extends object>(
  part: ServedPart<Ports>,
  settings: {
    readonly name: string;
    readonly host: string;
    readonly graceMs: number;
    readonly logger: Logger;
    readonly telemetry: Telemetry;
  },
): Promise<number> {
  const { name, logger, telemetry } = settings;
  let ports: Ports;
  try {
    ports = await part.start();
  } catch (error) {
    // A part that cannot open its ports must not linger half-started (policy polls, open listeners).
    await part.close(0);
    await telemetry.shutdown();
    throw error;
  }
  const listening: object = { event: 'listening', host: settings.host, ...ports };
  logger.info(listening, `${name} listening`);

  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      logger.info({ event: 'shutdown', signal, graceMs: settings.graceMs }, 'draining');
      resolve();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await part.close();
  await telemetry.shutdown();
  logger.info({ event: 'stopped' }, `${name} stopped`);
  return 0;
}

/** A port flag's value: a number when it is one, else left as text so the schema names the flag and what it expected. */
export function portFlag(value: string | undefined): number | string | undefined {
  if (value === undefined) return undefined;
  return /^\d+$/.test(value) ? Number(value) : value;
}
