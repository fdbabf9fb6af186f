/**
 * The batching log writer (src/telemetry/line-writer.ts) holds up to 16 KiB
 * of lines or 200 ms; a process that ends holding lines must still write
 * every one of them, whether it calls process.exit, returns with a timer
 * pending, or is stopped by SIGTERM (#28).
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { startProcess } from '../helpers/process.ts';

const LOGGER = fileURLToPath(new URL('../../src/telemetry/logger.ts', import.meta.url));
const AUDIT = fileURLToPath(new URL('../../src/telemetry/audit-event.ts', import.meta.url));
const LINES = 250;

/** A process that writes LINES decision lines to stdout through baton's logger, then ends as `ending` says. */
function script(ending: string): string {
  return `
    const { createLogger } = await import(${JSON.stringify(LOGGER)});
    const { writeAuditEvent } = await import(${JSON.stringify(AUDIT)});
    const logger = createLogger({ name: 'payments', traceIds: false });
    const write = () => { for (let i = 0; i < ${LINES}; i++) writeAuditEvent(logger, { event: 'decision', component: 'sidecar', direction: 'inbound', chain: ['orders'], target: 'payments', path: '/' + i, rule: 'r', decision: 'allow' }); };
    ${ending}
  `;
}

function decisionPaths(stdout: string): string[] {
  return stdout
    .split('\n')
    .filter((line) => line.includes('"event":"decision"'))
    .map((line) => (JSON.parse(line) as { path: string }).path);
}

const EXPECTED = Array.from({ length: LINES }, (_, i) => `/${i}`);

describe('log lines held by the batching writer when a process ends', () => {
  it('are all written, in order, when the process calls process.exit', async () => {
    const child = startProcess(process.execPath, ['--input-type=module', '-e', script('write(); process.exit(0);')]);
    assert.equal(await child.exited, 0, child.stderr());
    assert.deepEqual(decisionPaths(child.stdout()), EXPECTED);
  });

  it('are all written when the process runs out of work with the flush timer pending', async () => {
    const child = startProcess(process.execPath, ['--input-type=module', '-e', script('write();')]);
    assert.equal(await child.exited, 0, child.stderr());
    assert.deepEqual(decisionPaths(child.stdout()), EXPECTED);
  });

  it('are all written on SIGTERM, as the CLI drains and returns', async () => {
    const child = startProcess(process.execPath, [
      '--input-type=module',
      '-e',
      script(
        `const keep = setInterval(() => {}, 1000); process.once('SIGTERM', () => { write(); clearInterval(keep); }); console.error('ready');`,
      ),
    ]);
    await child.waitForOutput(/ready/);
    child.child.kill('SIGTERM');
    assert.equal(await child.exited, 0, child.stderr());
    assert.deepEqual(decisionPaths(child.stdout()), EXPECTED);
  });
});
