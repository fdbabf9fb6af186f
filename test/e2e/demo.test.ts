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
    const { code, stdout, stderr } = await runBaton(['demo']);
    assert.equal(code, 0, `${stdout.slice(-3000)}\n${stderr.slice(-3000)}`);
    assert.match(stdout, /gateway → orders → payments/);
    assert.match(stdout, /✔ allowed end to end over mTLS/);
    assert.match(stdout, /payments +← spiffe:\/\/baton\.demo\/ns\/demo\/sa\/orders +token bound/);
    assert.match(stdout, /✔ refused by the policy/);
    assert.doesNotMatch(stdout, /eyJ|Bearer /);
    // What a newcomer needs to read it: caller=external, chain=—, txn, request, and scope narrowing at each hop.
    assert.match(stdout, /^ {3}caller=external +the token came straight from the identity provider/m);
    assert.match(stdout, /^ {3}chain=— +no service has called/m);
    assert.match(stdout, /^ {3}txn +one id for every request made with the same user token/m);
    assert.match(stdout, /^ {3}request +one id for this one request at every hop/m);
    // Derived from what the hops saw in this run: the example policy drops shop after the gateway, orders:write after orders.
    assert.match(stdout, /^ {3}scope +narrows at each hop .*: orders lost shop; payments lost orders:write$/m);
    assert.match(stdout, /^ {3}txn \S+ {2}request [A-Za-z0-9_-]{16}$/m);
  });
});
