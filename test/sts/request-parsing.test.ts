import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { createAudienceResolver } from '../../src/sts/audience.ts';
import { parseTokenRequestForm } from '../../src/sts/form.ts';
import { hashedSecretVerifier, hashSecret, plainSecretVerifier } from '../../src/sts/secret-hash.ts';
import { BadRequestError } from '../../src/core/errors.ts';
import { InvalidTargetError } from '../../src/sts/errors.ts';

const known = (name: string) => ['orders', 'payments'].includes(name);

describe('token request parameters', () => {
  it('refuses any non-repeatable parameter sent twice and keeps repeated audiences', () => {
    assert.throws(() => parseTokenRequestForm('scope=a&scope=b'), {
      code: BadRequestError.code,
      reason: 'duplicate-parameter',
    });
    assert.deepEqual(parseTokenRequestForm('audience=a&audience=b').all('audience'), ['a', 'b']);
  });

  it('treats an empty value as absent (RFC 6749 §3.1)', () => {
    assert.equal(parseTokenRequestForm('scope=').get('scope'), undefined);
  });

  it('never echoes an attacker-chosen parameter name', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 60 }), (name) => {
        const shown = /^[a-z_]{1,40}$/.test(name) ? name : '(unrecognised)';
        const body = `${encodeURIComponent(name)}=1&${encodeURIComponent(name)}=2`;
        assert.throws(() => parseTokenRequestForm(body), {
          message: `expected the parameter ${shown} at most once, got it more than once`,
        });
      }),
    );
  });
});

describe('audience and resource (RFC 8707) to one service', () => {
  const resolver = createAudienceResolver({ 'https://api.example.com/pay': 'payments' });

  it('names the service by audience, by the resource host first label, or by the resources map', () => {
    assert.equal(resolver.resolve({ audiences: ['orders'], resources: [] }, known), 'orders');
    assert.equal(resolver.resolve({ audiences: [], resources: ['http://orders:7070/x'] }, known), 'orders');
    assert.equal(resolver.resolve({ audiences: [], resources: ['https://api.example.com/pay'] }, known), 'payments');
    assert.equal(resolver.resolve({ audiences: ['orders'], resources: ['http://orders.ns.svc/'] }, known), 'orders');
  });

  it('refuses no target, several targets, an unknown one, an address or a fragment with invalid_target', () => {
    for (const request of [
      { audiences: [], resources: [] },
      { audiences: ['orders', 'payments'], resources: [] },
      { audiences: ['ledger'], resources: [] },
      { audiences: [], resources: ['http://10.0.0.1/'] },
      { audiences: [], resources: ['http://orders/#x'] },
      { audiences: [], resources: ['not a uri'] },
    ]) {
      assert.throws(() => resolver.resolve(request, known), { code: InvalidTargetError.code });
    }
  });
});

describe('client secrets', () => {
  it('verifies an scrypt secretHash and refuses a wrong secret', async () => {
    const verifier = hashedSecretVerifier(await hashSecret('correct horse battery staple', 10));
    assert.equal(await verifier.verify('correct horse battery staple'), true);
    assert.equal(await verifier.verify('correct horse battery stapler'), false);
    assert.equal(await verifier.verify('correct horse battery staple'), true);
  });

  it('compares plain secrets of any length without throwing', async () => {
    const verifier = plainSecretVerifier('s3cret-s3cret-s3cret');
    assert.equal(await verifier.verify('x'), false);
    assert.equal(await verifier.verify('s3cret-s3cret-s3cret'), true);
  });

  it('refuses a malformed secretHash at startup', () => {
    assert.throws(() => hashedSecretVerifier('scrypt$abc'));
  });
});
