import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ServiceNameInvalidError } from '../../src/core/errors.ts';
import { canonicalServiceName, isServiceName, serviceName, splitServiceName } from '../../src/core/service-name.ts';

describe('service names (a DNS-1123 label, optionally qualified by its namespace)', () => {
  it('mints a ServiceName from a DNS-1123 label, or two joined by a dot (service.namespace)', () => {
    for (const name of [
      'orders',
      'a',
      'payments-v2',
      '9lives',
      'x'.repeat(63),
      'orders.shop',
      'gateway.web-v2',
      `${'x'.repeat(63)}.${'y'.repeat(63)}`,
    ])
      assert.equal(serviceName(name), name);
  });

  it('splits a name into service and namespace, and spells a service one way for a home namespace', () => {
    assert.deepEqual(splitServiceName('orders'), { service: 'orders', namespace: undefined });
    assert.deepEqual(splitServiceName('orders.shop'), { service: 'orders', namespace: 'shop' });
    assert.equal(canonicalServiceName('orders', 'shop', 'shop'), 'orders');
    assert.equal(canonicalServiceName('orders', 'shop', 'default'), 'orders.shop');
    assert.throws(() => canonicalServiceName('Orders', 'shop', 'default'), { code: 'BATON_SERVICE_NAME_INVALID' });
  });

  for (const [why, value] of [
    ['an empty name', ''],
    ['uppercase letters', 'Orders'],
    ['a leading hyphen', '-orders'],
    ['a trailing hyphen', 'orders-'],
    ['a trailing dot', 'orders.'],
    ['a leading dot', '.orders'],
    ['three labels', 'orders.shop.svc'],
    ['a namespace that rule ids use as a word', 'orders.accepts'],
    ['an uppercase namespace', 'orders.Shop'],
    ['an underscore', 'orders_v2'],
    ['a space', 'orders '],
    ['more than 63 characters', 'x'.repeat(64)],
    ['a non-ASCII letter', 'ordérs'],
  ] as const) {
    it(`refuses a name with ${why}, with a typed error`, () => {
      assert.throws(
        () => serviceName(value),
        (error: unknown) =>
          error instanceof ServiceNameInvalidError &&
          error.code === 'BATON_SERVICE_NAME_INVALID' &&
          error.status === 400,
      );
      assert.equal(isServiceName(value), false);
    });
  }

  it('quotes at most 80 characters of a bad name in its message', () => {
    assert.throws(
      () => serviceName('Q'.repeat(10_000)),
      (error: unknown) => error instanceof ServiceNameInvalidError && error.message.length < 400,
    );
  });

  it('mints only what Kubernetes accepts as a service name, and throws a typed error for everything else (property)', () => {
    const alphabet = 'abcxyz0189-.A_ é';
    const label = (part: string) =>
      part.length >= 1 &&
      part.length <= 63 &&
      [...part].every((c) => /[a-z0-9-]/.test(c)) &&
      !part.startsWith('-') &&
      !part.endsWith('-');
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...alphabet), { maxLength: 140 }).map((chars) => chars.join('')),
        (text) => {
          const parts = text.split('.');
          const valid =
            parts.length <= 2 &&
            parts.every(label) &&
            !(parts.length === 2 && ['accepts', 'entrypoint'].includes(parts[1] as string));
          if (valid) assert.equal(serviceName(text), text);
          else assert.throws(() => serviceName(text), { code: 'BATON_SERVICE_NAME_INVALID' });
        },
      ),
    );
  });
});
