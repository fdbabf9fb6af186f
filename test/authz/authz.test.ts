/**
 * `baton authz` in process, with stand-in collaborators: readiness decided
 * as the sidecar decides it (src/sidecar/readiness.ts), and a policy update
 * logged once, by the policy source, not again by the authorizer.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createAuthz } from '../../src/authz/authz.ts';
import { loadAuthzConfig } from '../../src/authz/config.ts';
import type { Collaborators } from '../../src/sidecar/collaborators.ts';
import { createContextHandles } from '../../src/sidecar/context-handles.ts';
import { captureLogs } from '../helpers/logs.ts';
import { compileTestPolicy } from '../helpers/policy.ts';
import { MutablePolicy, SHOP } from '../helpers/sidecar.ts';

function standIns(policy: MutablePolicy): Collaborators {
  return {
    policy,
    verifier: {
      verify: async () => {
        throw new Error('not called here');
      },
    },
    verifiedCache: { get: () => undefined, set: () => undefined, size: 0 },
    handles: createContextHandles({ maxTokenBytes: 8192 }),
    exchanger: () => undefined,
    waitingFor: () => (policy.current() === undefined ? ['policy'] : []),
    close: async () => undefined,
  };
}

describe('baton authz in process', () => {
  it('is ready once the policy is there, and leaves the policy update to the source to log', async () => {
    const config = loadAuthzConfig({
      overrides: {
        service: 'orders',
        'sts.issuer': 'http://127.0.0.1:1',
        'sts.clientId': 'orders',
        'sts.clientSecret': 'test-secret',
        'policy.file': 'unused.yaml',
        'transport.mode': 'plaintext',
        'grpc.port': 0,
        'http.port': 0,
        'admin.port': 0,
      },
    });
    const logs = captureLogs('orders');
    const policy = new MutablePolicy(undefined);
    const authz = createAuthz(config, { logger: logs.logger, collaborators: standIns(policy) });
    try {
      const ports = await authz.start();
      const readyz = async (): Promise<number> => (await fetch(`http://127.0.0.1:${ports.admin}/readyz`)).status;
      assert.equal(await readyz(), 503, 'no policy yet');

      policy.swap(compileTestPolicy(SHOP));
      assert.equal(await readyz(), 200);
      assert.deepEqual(
        logs.lines.filter((l) => l.event === 'policy_updated'),
        [],
        'the stand-in source logs nothing, so neither may the authorizer',
      );
    } finally {
      await authz.close(0);
    }
  });
});
