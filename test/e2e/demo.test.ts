import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ScenarioResult } from '../../src/demo/scenario.ts';
import { assertDemoOutcome } from '../helpers/demo-outcome.ts';
import { runBaton } from '../helpers/process.ts';

describe('baton demo (what npm start runs)', { timeout: 180_000 }, () => {
  it('drives an allowed chain through three sidecars and a refused one, as separate processes', async () => {
    const { code, stdout, stderr } = await runBaton(['demo', '--json']);
    assert.equal(code, 0, stderr.slice(-3000));
    assertDemoOutcome(JSON.parse(stdout) as ScenarioResult[]);
  });

  it('prints a readable report without any token in it', async () => {
    const { code, stdout } = await runBaton(['demo']);
    assert.equal(code, 0);
    assert.match(stdout, /gateway → orders → payments/);
    assert.match(stdout, /✔ allowed end to end over mTLS/);
    assert.match(stdout, /payments +← spiffe:\/\/baton\.demo\/ns\/demo\/sa\/orders +token bound/);
    assert.match(stdout, /✔ refused by the policy/);
    assert.doesNotMatch(stdout, /eyJ|Bearer /);
  });
});
