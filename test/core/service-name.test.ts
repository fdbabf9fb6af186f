import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ServiceNameInvalidError } from '../../src/core/errors.ts';
import { isServiceName, serviceName } from '../../src/core/service-name.ts';

describe('service names (DNS-1123 labels)', () => {
  it('mints a ServiceName from a DNS-1123 label', () => {
    for (const name of ['orders', 'a', 'payments-v2', '9lives', 'x'.repeat(63)]) assert.equal(serviceName(name), name);
  });

  for (const [why, value] of [
    ['an empty name', ''],
    ['uppercase letters', 'Orders'],
    ['a leading hyphen', '-orders'],
    ['a trailing hyphen', 'orders-'],
    ['a dot', 'orders.shop'],
    ['an underscore', 'orders_v2'],
    ['a space', 'orders '],
    ['more than 63 characters', 'x'.repeat(64)],
    ['a non-ASCII letter', 'ordérs'],
  ] as const) {
    it(`refuses a name with ${why}, with a typed error`, () => {
      assert.throws(() => serviceName(value), (error: unknown) => error instanceof ServiceNameInvalidError && error.code === 'BATON_SERVICE_NAME_INVALID' && error.status === 400);
      assert.equal(isServiceName(value), false);
    });
  }

  it('quotes at most 80 characters of a bad name in its message', () => {
    assert.throws(() => serviceName('Q'.repeat(10_000)), (error: unknown) => error instanceof ServiceNameInvalidError && error.message.length < 400);
  });

  it('mints only what Kubernetes accepts as a service name, and throws a typed error for everything else (property)', () => {
    const alphabet = 'abcxyz0189-.A_ é';
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...alphabet), { maxLength: 70 }).map((chars) => chars.join('')), (text) => {
        const dns1123 = text.length >= 1 && text.length <= 63 && [...text].every((c) => /[a-z0-9-]/.test(c)) && !text.startsWith('-') && !text.endsWith('-');
        if (dns1123) assert.equal(serviceName(text), text);
        else assert.throws(() => serviceName(text), { code: 'BATON_SERVICE_NAME_INVALID' });
      }),
    );
  });
});
