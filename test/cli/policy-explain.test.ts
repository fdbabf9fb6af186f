import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runCli } from '../helpers/cli.ts';

const EXAMPLE = 'examples/shop.callgraph.yaml';
const explain = (...args: string[]) => runCli(['policy', 'explain', EXAMPLE, ...args]);

describe('baton policy explain', () => {
  it('explains an allowed chain and exits 0', async () => {
    const { code, stdout } = await explain(
      '--chain',
      'gateway,orders',
      '--target',
      'payments',
      '--method',
      'POST',
      '--path',
      '/charges',
      '--scope',
      'payments:charge fido',
      '--acr',
      'urn:baton:acr:mfa',
    );
    assert.equal(code, 0);
    assert.match(stdout, /^decision: allow$/m);
    assert.match(stdout, /^rule: +payments\.accepts\.charge-http +\(examples\/shop\.callgraph\.yaml:\d+:\d+\)$/m);
    assert.match(stdout, /^mode: +enforce$/m);
  });

  it('explains a gRPC call by its method path: the grpc: rule decides it', async () => {
    const { code, stdout } = await explain(
      '--chain',
      'gateway,orders',
      '--target',
      'payments',
      '--method',
      'POST',
      '--path',
      '/shop.v1.Payments/Charge',
      '--scope',
      'payments:charge fido',
      '--acr',
      'urn:baton:acr:mfa',
    );
    assert.equal(code, 0);
    assert.match(stdout, /^rule: +payments\.accepts\.charge +\(examples\/shop\.callgraph\.yaml:\d+:\d+\)$/m);
  });

  it('prints the decision as JSON and exits 3 when denied, with acr values for step-up', async () => {
    const { code, stdout } = await explain(
      '--chain',
      'gateway,orders',
      '--target',
      'payments',
      '--method',
      'POST',
      '--path',
      '/charges',
      '--scope',
      'payments:charge',
      '--scope',
      'otp',
      '--json',
    );
    assert.equal(code, 3);
    const decision = JSON.parse(stdout);
    assert.equal(decision.allowed, false);
    assert.equal(decision.cause, 'acr');
    assert.equal(decision.rule, 'payments.accepts.charge-http');
    assert.deepEqual(decision.acrValues, ['urn:baton:acr:mfa']);
    assert.equal(decision.mode, 'enforce');
  });

  it('says clearly when the deciding rule is in shadow mode', async () => {
    const { code, stdout } = await explain(
      '--chain',
      'gateway,orders',
      '--target',
      'payments',
      '--method',
      'POST',
      '--path',
      '/refunds/7',
    );
    assert.equal(code, 3);
    assert.match(stdout, /^mode: +shadow$/m);
    assert.match(stdout, /SHADOW mode/);
  });

  it('takes --external or an empty --chain for a token straight from an identity provider', async () => {
    const external = await explain(
      '--external',
      '--target',
      'gateway',
      '--path',
      '/orders/1',
      '--scope',
      'shop',
      '--json',
    );
    assert.equal(external.code, 0);
    assert.equal(JSON.parse(external.stdout).rule, 'gateway.accepts.public-api');
    const empty = await explain('--chain', '', '--target', 'orders', '--json');
    assert.equal(empty.code, 3);
    assert.equal(JSON.parse(empty.stdout).cause, 'not_entrypoint');
  });

  it('decides a service-identity call with --no-user', async () => {
    const { code } = await explain(
      '--chain',
      'billing-job',
      '--target',
      'orders',
      '--method',
      'GET',
      '--path',
      '/orders/1',
      '--no-user',
    );
    assert.equal(code, 0);
  });

  it('exits 1 with located problems for a bad policy', async () => {
    const { code, stderr } = await runCli([
      'policy',
      'explain',
      'test/fixtures/policies/unknown-caller.yaml',
      '--chain',
      'gateway',
      '--target',
      'orders',
    ]);
    assert.equal(code, 1);
    assert.match(stderr, /unknown-caller\.yaml:10:17: error POLICY_UNKNOWN_SERVICE/);
  });

  it('exits 2 on usage errors', async () => {
    assert.equal((await explain('--chain', 'gateway')).code, 2);
    assert.equal((await explain('--target', 'orders')).code, 2);
    assert.equal((await explain('--target', 'orders', '--chain', 'gateway', '--bogus')).code, 2);
  });
});
