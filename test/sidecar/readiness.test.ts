import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import type { Collaborators } from '../../src/sidecar/collaborators.ts';
import { createReadiness } from '../../src/sidecar/readiness.ts';

describe('readiness', () => {
  it('waits for startup, then for what the collaborators name, and once closing only for shutdown, with no problem to fix', () => {
    let closing = false;
    const built: { collaborators?: Collaborators } = {};
    let waiting = ['policy'];
    const versions: number[] = [];
    const readiness = createReadiness({
      part: 'sidecar',
      service: 'orders',
      logger: pino({ level: 'silent' }),
      mesh: undefined,
      collaborators: () => built.collaborators,
      closing: () => closing,
      policyVersion: (version) => versions.push(version),
    });
    assert.deepEqual(readiness.waitingFor(), ['startup']);
    assert.equal(readiness.refresh(), false);

    let onUpdate: ((policy: unknown, version: number) => void) | undefined;
    built.collaborators = {
      waitingFor: () => waiting,
      problems: () => ['no policy server at https://policy: ECONNREFUSED'],
      policy: { onUpdate: (listener: typeof onUpdate) => (onUpdate = listener), version: () => 3 },
    } as unknown as Collaborators;
    readiness.start();
    assert.deepEqual(versions, [3], 'the version at start');
    assert.deepEqual(readiness.waitingFor(), ['policy']);
    assert.deepEqual(readiness.problems(), ['no policy server at https://policy: ECONNREFUSED']);
    assert.equal(readiness.state.ready, false);

    waiting = [];
    onUpdate?.({}, 4);
    assert.deepEqual(versions, [3, 4], 'each update');
    assert.equal(readiness.state.ready, true, 'an update decides again');

    closing = true;
    readiness.stop();
    assert.equal(readiness.state.ready, false, 'stop decides once more');
    assert.deepEqual(readiness.waitingFor(), ['shutdown']);
    assert.deepEqual(readiness.problems(), []);
  });
});
