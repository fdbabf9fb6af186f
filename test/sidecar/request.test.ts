import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { BadRequestError, MethodNotAllowedError } from '../../src/core/errors.ts';
import { requestTarget } from '../../src/sidecar/request.ts';

const target = (url: string, headers: Record<string, string> = {}, method = 'GET') =>
  requestTarget({ url, headers, method } as unknown as IncomingMessage);

describe('outbound request target', () => {
  it('reads origin-form with Host, ignoring a port', () => {
    assert.deepEqual(target('/charges?x=1', { host: 'Payments:7070' }), { service: 'payments', path: '/charges?x=1' });
  });

  it('reads absolute-form as HTTP_PROXY clients send it', () => {
    assert.deepEqual(target('http://payments/charges'), { service: 'payments', path: '/charges' });
    assert.deepEqual(target('http://payments:80'), { service: 'payments', path: '/' });
    assert.deepEqual(target('http://payments?q=1'), { service: 'payments', path: '/?q=1' });
  });

  it('refuses what it cannot attribute to one service', () => {
    const code = (fn: () => unknown) => {
      try {
        fn();
        return 'none';
      } catch (error) {
        return (error as { code: string }).code;
      }
    };
    assert.equal(
      code(() => target('https://payments/charges')),
      BadRequestError.code,
    );
    assert.equal(
      code(() => target('http://user@payments/')),
      BadRequestError.code,
    );
    assert.equal(
      code(() => target('/x', { host: 'payments.example.com' })),
      BadRequestError.code,
    );
    assert.equal(
      code(() => target('/x')),
      BadRequestError.code,
    );
    assert.equal(
      code(() => target('payments:443', { host: 'payments:443' }, 'CONNECT')),
      MethodNotAllowedError.code,
    );
  });
});
